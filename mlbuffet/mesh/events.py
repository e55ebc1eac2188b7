"""Publishing the mesh's events: best effort, so that no event ever fails the change it reports.

Model events come from the registry admin (REST and the client alike), the
trainer and the modelhosts; node events from the metrics actor. Whoever
publishes, the message and its subject are built here.
"""

from __future__ import annotations

import logging
import time

from nats.aio.client import Client

from mlbuffet.protocol import subjects
from mlbuffet.protocol.events import ModelEvent, ModelEventKind, NodeEvent
from mlbuffet.protocol.wire import pack

log = logging.getLogger(__name__)


async def publish_model_event(
    nc: Client,
    node: str,
    event: ModelEventKind,
    model: str,
    version: int | None,
    reason: str | None = None,
) -> None:
    """Tell the cluster what `node` changed; a failure is logged, never raised."""
    message = ModelEvent(
        event=event, model=model, version=version, node=node, at=time.time(), reason=reason
    )
    try:
        await nc.publish(subjects.model_events(model), pack(message))
    except Exception:
        log.warning("could not publish the %s event of %s", event.value, model, exc_info=True)


async def publish_node_event(nc: Client, event: NodeEvent) -> None:
    """Tell the cluster that a node came up or went down; a failure is logged, never raised."""
    try:
        await nc.publish(subjects.node_events(event.node), pack(event))
    except Exception:
        log.warning("could not publish that %s is %s", event.node, event.event.value, exc_info=True)
