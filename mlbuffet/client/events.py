"""The events of the mesh (`mlbuffet.events.>`) as Python objects, and a stream of them.

Kinds this release knows parse into their message class (ModelEvent); any
other kind, from a newer release or another role, is an OtherEvent with the
raw map: a reader of events never fails on what it does not know.
"""

from __future__ import annotations

import asyncio
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from nats.aio.client import Client
from nats.aio.msg import Msg
from nats.aio.subscription import Subscription

from mlbuffet.mesh.connection import flush_subscriptions
from mlbuffet.protocol import subjects
from mlbuffet.protocol.errors import MLBuffetError
from mlbuffet.protocol.events import ModelEvent
from mlbuffet.protocol.names import parse_model_name
from mlbuffet.protocol.wire import unpack_map

PENDING_EVENTS = 10_000
"""Events held for a slow reader before NATS drops some (a bounded buffer)."""


@dataclass(frozen=True, slots=True)
class OtherEvent:
    """An event of a kind this client does not parse; `data` is its msgpack map as sent."""

    subject: str
    data: Mapping[Any, Any]

    @property
    def type(self) -> str | None:
        kind = self.data.get("type")
        return kind if isinstance(kind, str) else None


Event = ModelEvent | OtherEvent

_PARSERS = {ModelEvent.TYPE: ModelEvent.from_dict}


def parse_event(msg: Msg) -> Event:
    """The event in `msg`; malformed or unknown kinds become an OtherEvent, never an error."""
    try:
        raw = unpack_map(msg.data)
    except MLBuffetError:
        return OtherEvent(msg.subject, {"payload": msg.data})
    parse = _PARSERS.get(raw.get("type"))  # type: ignore[arg-type]
    if parse is not None:
        try:
            return parse(raw)
        except MLBuffetError:
            pass
    return OtherEvent(msg.subject, raw)


def event_subjects(models: Sequence[str] | None) -> list[str]:
    if models is None:
        return [subjects.all_events()]
    return [subjects.model_events(parse_model_name(m)) for m in models]


class EventStream:
    """Events as they happen: `async with` subscribes (so nothing after it is missed),
    `async for` reads them; iterating without `async with` subscribes on first use."""

    def __init__(self, nc: Client, models: Sequence[str] | None = None) -> None:
        self._nc = nc
        self._subjects = event_subjects(models)
        self._queue: asyncio.Queue[Event] = asyncio.Queue(PENDING_EVENTS)
        self._subscriptions: list[Subscription] = []
        self._started = False

    async def start(self) -> EventStream:
        """Subscribe; returns once the server has the subscriptions."""
        if not self._started:
            self._started = True
            for subject in self._subjects:
                self._subscriptions.append(
                    await self._nc.subscribe(
                        subject, cb=self._on_message, pending_msgs_limit=PENDING_EVENTS
                    )
                )
            await flush_subscriptions(self._nc)
        return self

    async def _on_message(self, msg: Msg) -> None:
        try:
            self._queue.put_nowait(parse_event(msg))
        except asyncio.QueueFull:
            pass  # a reader that stopped reading loses new events, never the process's memory

    async def next(self, timeout: float | None = None) -> Event:  # noqa: ASYNC109
        """The next event; TimeoutError after `timeout` seconds without one."""
        await self.start()
        return await asyncio.wait_for(self._queue.get(), timeout)

    async def close(self) -> None:
        for subscription in self._subscriptions:
            try:
                await subscription.unsubscribe()
            except Exception:  # the connection may be gone already; nothing is left to undo
                pass
        self._subscriptions.clear()

    def __aiter__(self) -> EventStream:
        return self

    async def __anext__(self) -> Event:
        return await self.next()

    async def __aenter__(self) -> EventStream:
        return await self.start()

    async def __aexit__(self, *exc: object) -> None:
        await self.close()
