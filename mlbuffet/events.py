"""Publishing model events: what a role changed in the registry, for whoever listens."""

from __future__ import annotations

import logging
import time

from nats.aio.client import Client

from mlbuffet.protocol import subjects
from mlbuffet.protocol.messages import ModelEvent, pack

log = logging.getLogger(__name__)


async def publish_model_event(
    nc: Client, event: str, model: str, version: int | None, node: str
) -> None:
    """Publish a ModelEvent on mlbuffet.events.model.<model>; best effort, never raises."""
    message = ModelEvent(event=event, model=model, version=version, node=node, at=time.time())
    try:
        await nc.publish(subjects.model_events(model), pack(message))
    except Exception:
        log.warning("could not publish the %s event of %s", event, model, exc_info=True)
