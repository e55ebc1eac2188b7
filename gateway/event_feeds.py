"""The gateway's observability side of the mesh: its presence and the event feeds.

Kept apart from service.py's MeshLink (which carries the inference and registry
traffic) but, like it, the only place these subjects are spoken to: the
routes in routes/monitoring.py call these (and mlbuffet.observe.cluster_status for the cluster
status) and never touch NATS themselves.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any

import nats.errors
from aiohttp import web
from nats.aio.client import Client
from nats.aio.msg import Msg

from gateway.config import WHO
from gateway.http_metrics import HTTP_METRICS
from gateway.service import CONFIG, MESH
from mlbuffet.mesh.connection import flush_subscriptions
from mlbuffet.mesh.errors import from_nats
from mlbuffet.observe.event_history import recent_events
from mlbuffet.observe.heartbeat import NodeLoad
from mlbuffet.observe.presence import Presence
from mlbuffet.protocol import subjects
from mlbuffet.protocol.errors import MLBuffetError, ServiceUnavailableError
from mlbuffet.protocol.wire import unpack_map

log = logging.getLogger(__name__)

EVENT_BACKLOG = 256
"""Events a slow SSE client may fall behind by; older ones are dropped (and said so)."""


@dataclass(frozen=True, slots=True)
class Event:
    """One event for an SSE client: its kind (model, node, train) and its JSON form."""

    kind: str
    data: str


def event_from(msg: Msg) -> Event | None:
    """An event message as JSON; None for one that is not a msgpack map JSON can carry."""
    kind = msg.subject.split(".")[2] if msg.subject.count(".") >= 2 else "event"
    try:
        raw = unpack_map(msg.data)
    except MLBuffetError:
        return None
    raw.setdefault("subject", msg.subject)
    try:
        return Event(kind, json.dumps(raw, default=_jsonable, ensure_ascii=False))
    except (TypeError, ValueError):  # a map JSON cannot say (bytes keys, say): skipped
        return None


HISTORY_LIMIT = 50
"""Events the page lists when it opens (and the history route's default)."""
MAX_HISTORY_LIMIT = 1_000


async def event_history(nc: Client, limit: int) -> list[dict[str, Any]]:
    """The last `limit` kept events, oldest first, as JSON objects with their kind and place."""
    try:
        kept = await recent_events(nc.jetstream(), limit)
    except (TimeoutError, nats.errors.Error) as exc:
        raise (
            from_nats(
                exc,
                WHO,
                timed_out=ServiceUnavailableError(
                    "the event history (JetStream) did not answer; retry"
                ),
            )
            or exc
        ) from None
    return [
        {
            **json.loads(json.dumps(event.data, default=_jsonable, ensure_ascii=False)),
            "kind": event.kind,
            "subject": event.subject,
            "stream": event.stream,
            "seq": event.seq,
            "at": event.at,
        }
        for event in kept
    ]


def _jsonable(value: Any) -> Any:
    if isinstance(value, bytes | bytearray):
        return value.hex()
    return str(value)


@dataclass(eq=False)
class EventFeed:
    """Events of one SSE client, from its own subscription to `mlbuffet.events.>`."""

    queue: asyncio.Queue[Event | None] = field(default_factory=lambda: asyncio.Queue(EVENT_BACKLOG))
    dropped: int = 0

    def put(self, event: Event | None) -> None:
        if self.queue.full():
            self.queue.get_nowait()
            self.dropped += 1
        self.queue.put_nowait(event)

    def close(self) -> None:
        self.put(None)


class EventFeeds:
    """Every open SSE stream of this gateway, so shutdown can end them at once."""

    def __init__(self) -> None:
        self.feeds: set[EventFeed] = set()

    @contextlib.asynccontextmanager
    async def open(self, nc: Client) -> AsyncIterator[EventFeed]:
        feed = EventFeed()

        async def on_event(msg: Msg) -> None:
            event = event_from(msg)
            if event is not None:
                feed.put(event)

        try:
            sub = await nc.subscribe(subjects.all_events(), cb=on_event)
            await flush_subscriptions(nc)
        except nats.errors.Error as exc:
            raise from_nats(exc, WHO) or exc from None
        self.feeds.add(feed)
        try:
            yield feed
        finally:
            self.feeds.discard(feed)
            with contextlib.suppress(Exception):
                await sub.unsubscribe()

    def close_all(self) -> None:
        for feed in self.feeds:
            feed.close()


EVENT_FEEDS = web.AppKey("event_feeds", EventFeeds)


async def presence_context(app: web.Application) -> AsyncIterator[None]:
    """aiohttp cleanup context, after mesh_context: heartbeats and the micro service."""
    metrics = app[HTTP_METRICS]
    mesh = app[MESH]

    def load() -> NodeLoad:
        return NodeLoad(in_flight=metrics.in_flight, counters={"http_requests": metrics.rows()})

    presence = Presence(mesh.nc, "gateway", mesh.node_id, load, app[CONFIG].heartbeat_interval_s)
    await presence.start()
    try:
        yield
    finally:
        await presence.stop()


async def close_event_feeds(app: web.Application) -> None:
    """on_shutdown: end every SSE stream, so they do not hold the shutdown for its timeout."""
    app[EVENT_FEEDS].close_all()
