"""The mesh's recent events, kept in JetStream for whoever connects late (a page, a tool).

Two bounded streams keep them: EVENTS_STREAM (model and node events, opened
here with the registry's buckets) and TRAIN_EVENTS_STREAM (training jobs'
state changes and log lines, opened by the JobStore). JetStream lets no two
streams share a subject, so a history reads both and merges them by time;
training log lines are left out of it (a job's log route has them).
"""

from __future__ import annotations

import asyncio
import contextlib
import heapq
import time
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import nats.errors
import nats.js.errors as js_errors
from nats.aio.msg import Msg
from nats.js import JetStreamContext
from nats.js.api import ConsumerConfig, DeliverPolicy, DiscardPolicy, StorageType, StreamConfig

from mlbuffet.protocol import subjects
from mlbuffet.protocol.errors import MLBuffetError
from mlbuffet.protocol.jobs import JobEvent
from mlbuffet.protocol.wire import unpack_map
from mlbuffet.registry.buckets import open_stream

EVENTS_MAX_MSGS = 10_000
"""Events kept by count: a day of a busy mesh (hosts loading models, nodes coming and going)."""
EVENTS_MAX_AGE_S = 7 * 24 * 3600
"""And by age: as long as TRAIN_EVENTS_STREAM keeps a job's events."""
EVENTS_MAX_BYTES = 16 * 1024 * 1024
"""A ceiling the count reaches first (an event is ~150 bytes); it bounds a hostile publisher."""
TRAIN_SCAN = 2_000
"""Training messages read back for the latest state changes: log lines outnumber them."""
LIVE_BACKLOG = 1_000
"""Live events waiting for a slow reader; the consumers wait for it beyond that (JetStream keeps them)."""
READ_IDLE_S = 2.0
"""A replay that hears nothing for this long has reached the end of what the stream had."""


@dataclass(frozen=True, slots=True)
class KeptEvent:
    """One event read back from a stream: where it is kept, and its msgpack map as sent."""

    stream: str
    seq: int
    subject: str
    at: float
    data: dict[Any, Any]

    @property
    def kind(self) -> str:
        """model, node or train: the subject's third token."""
        parts = self.subject.split(".")
        return parts[2] if len(parts) > 2 else "event"


async def open_event_history(js: JetStreamContext, replicas: int | None) -> bool:
    """Make sure EVENTS_STREAM exists (idempotent; replicas as the registry's); True if created."""
    return await open_stream(
        js,
        StreamConfig(
            name=subjects.EVENTS_STREAM,
            description="MLBuffet model and node events (bounded history)",
            subjects=subjects.kept_events(),
            max_msgs=EVENTS_MAX_MSGS,
            max_age=EVENTS_MAX_AGE_S,
            max_bytes=EVENTS_MAX_BYTES,
            discard=DiscardPolicy.OLD,
            storage=StorageType.FILE,
        ),
        replicas,
    )


def kept_event(stream: str, msg: Msg) -> KeptEvent | None:
    """The event in a stream message; None for a malformed one or a training log line."""
    try:
        data = unpack_map(msg.data)
    except MLBuffetError:
        return None
    if stream == subjects.TRAIN_EVENTS_STREAM:
        if data.get("kind") != JobEvent.STATE:
            return None
        data.pop("lines", None)
    meta = msg.metadata
    seq = meta.sequence.stream if meta.sequence else 0
    at = data.get("at")
    if not isinstance(at, int | float):
        at = meta.timestamp.timestamp() if meta.timestamp else time.time()
    return KeptEvent(stream, seq, msg.subject, float(at), data)


@dataclass(frozen=True, slots=True)
class Since:
    """Where a replay starts: a stream sequence of EVENTS_STREAM, or a Unix time."""

    seq: int | None = None
    time: float | None = None

    @classmethod
    def parse(cls, text: str) -> Since:
        """`120` is sequence 120; `90s`, `15m`, `2h`, `1d` are that long ago."""
        text = text.strip()
        units = {"s": 1, "m": 60, "h": 3600, "d": 86400}
        if text.isascii() and text.isdigit():
            return cls(seq=max(1, int(text)))
        if len(text) > 1 and text[-1] in units:
            try:
                amount = float(text[:-1])
            except ValueError:
                amount = -1.0
            if amount >= 0:
                return cls(time=time.time() - amount * units[text[-1]])
        raise ValueError(f"{text!r}: give a sequence number (120) or a duration (90s, 15m, 2h, 1d)")


async def _bounds(js: JetStreamContext, stream: str) -> tuple[int, int] | None:
    """(first, last) sequence of `stream`, (0, 0) when empty; None when it does not exist."""
    try:
        info = await js.stream_info(stream)
    except js_errors.NotFoundError:
        return None
    state = info.state
    if not state.messages:
        return 0, 0
    return state.first_seq, state.last_seq


class _Reader:
    """An ordered consumer on one stream from a start point; reads to its end, then follows."""

    def __init__(self, js: JetStreamContext, stream: str, filters: Sequence[str]) -> None:
        self.js = js
        self.stream = stream
        self.filters = list(filters)
        self.sub: Any = None

    async def open(self, start_seq: int | None, start_time: float | None) -> None:
        if start_seq is not None:
            config = ConsumerConfig(
                deliver_policy=DeliverPolicy.BY_START_SEQUENCE, opt_start_seq=start_seq
            )
        elif start_time is not None:
            config = ConsumerConfig(
                deliver_policy=DeliverPolicy.BY_START_TIME,
                opt_start_time=datetime.fromtimestamp(start_time, UTC),
            )
        else:
            config = ConsumerConfig(deliver_policy=DeliverPolicy.NEW)
        config.filter_subjects = self.filters
        self.sub = await self.js.subscribe(
            "", stream=self.stream, config=config, ordered_consumer=True
        )

    async def next(self, timeout: float) -> KeptEvent | None:  # noqa: ASYNC109
        """The next kept event, skipping log lines; None after `timeout` s of silence."""
        loop = asyncio.get_running_loop()
        until = loop.time() + timeout
        while (left := until - loop.time()) > 0:
            try:
                msg = await self.sub.next_msg(timeout=left)
            except (TimeoutError, nats.errors.TimeoutError):
                return None
            event = kept_event(self.stream, msg)
            if event is not None:
                return event
        return None

    async def read_to(self, last_seq: int) -> list[KeptEvent]:
        """Every kept event up to `last_seq` (what the stream held when asked)."""
        found: list[KeptEvent] = []
        while True:
            try:
                msg = await self.sub.next_msg(timeout=READ_IDLE_S)
            except (TimeoutError, nats.errors.TimeoutError):
                return found  # messages past their age limit vanished meanwhile
            event = kept_event(self.stream, msg)
            if event is not None:
                found.append(event)
            seq = msg.metadata.sequence.stream if msg.metadata.sequence else last_seq
            if seq >= last_seq:
                return found

    async def close(self) -> None:
        if self.sub is not None:
            with contextlib.suppress(Exception):
                await self.sub.unsubscribe()


def _streams() -> list[tuple[str, list[str]]]:
    return [
        (subjects.EVENTS_STREAM, subjects.kept_events()),
        (subjects.TRAIN_EVENTS_STREAM, [subjects.train_events("*")]),
    ]


async def recent_events(js: JetStreamContext, limit: int) -> list[KeptEvent]:
    """The last `limit` events the mesh kept, oldest first (training's state changes only)."""
    found: list[KeptEvent] = []
    for stream, filters in _streams():
        bounds = await _bounds(js, stream)
        if bounds is None or bounds == (0, 0):
            continue
        first, last = bounds
        back = limit if stream == subjects.EVENTS_STREAM else TRAIN_SCAN
        reader = _Reader(js, stream, filters)
        try:
            await reader.open(max(first, last - back + 1), None)
            found.extend(await reader.read_to(last))
        finally:
            await reader.close()
    found.sort(key=lambda event: event.at)
    return found[-limit:] if limit > 0 else []


class EventReplay:
    """Events from a starting point, oldest first, then live as they happen (`async for`).

    Both streams are read to where they ended when the replay began and
    merged by time; after that, events are yielded as either stream gets them.
    """

    def __init__(self, js: JetStreamContext, since: Since) -> None:
        self.js = js
        self.since = since
        self.readers: list[_Reader] = []

    async def _start_time(self) -> float | None:
        """A sequence start given to the training stream as the time of that event."""
        if self.since.seq is None:
            return self.since.time
        try:
            msg = await self.js.get_msg(subjects.EVENTS_STREAM, self.since.seq)
        except js_errors.NotFoundError:
            return None  # before the first kept event (or none yet): from the beginning
        try:
            at = unpack_map(msg.data or b"").get("at")
        except MLBuffetError:
            return None
        return float(at) if isinstance(at, int | float) else None

    async def __aiter__(self) -> AsyncIterator[KeptEvent]:
        start_time = await self._start_time()
        backlog: list[list[KeptEvent]] = []
        try:
            for stream, filters in _streams():
                bounds = await _bounds(self.js, stream)
                if bounds is None:
                    continue  # not made yet (no trainer or gateway has run): nothing to follow
                reader = _Reader(self.js, stream, filters)
                self.readers.append(reader)
                if stream == subjects.EVENTS_STREAM and self.since.seq is not None:
                    await reader.open(self.since.seq, None)
                elif start_time is not None:
                    await reader.open(None, start_time)
                else:
                    await reader.open(1, None)
                backlog.append(await reader.read_to(bounds[1]) if bounds[1] else [])
            for event in heapq.merge(*backlog, key=lambda event: event.at):
                yield event
            async for event in self._live():
                yield event
        finally:
            for reader in self.readers:
                await reader.close()

    async def _live(self) -> AsyncIterator[KeptEvent]:
        queue: asyncio.Queue[KeptEvent] = asyncio.Queue(LIVE_BACKLOG)

        async def pump(reader: _Reader) -> None:
            while True:
                event = await reader.next(READ_IDLE_S)
                if event is not None:
                    await queue.put(event)

        pumps = [asyncio.create_task(pump(reader)) for reader in self.readers]
        try:
            while True:
                yield await queue.get()
        finally:
            for task in pumps:
                task.cancel()
            await asyncio.gather(*pumps, return_exceptions=True)
