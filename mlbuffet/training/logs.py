"""Reading a job's log: the stored whole log of a finished job, or a replay of its event stream.

While a job runs, its log lines exist only as JobEvents in the stream
TRAIN_EVENTS_STREAM; an ordered consumer replays them from the first one.
`follow` keeps reading until a state event says the job finished, so a
reader that joins late misses nothing and one that joins early waits.
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator

import nats.errors
import nats.js.errors as js_errors
from nats.js.api import DeliverPolicy

from mlbuffet.protocol import subjects
from mlbuffet.protocol.jobs import JobEvent
from mlbuffet.protocol.wire import unpack
from mlbuffet.training.store import JobStore

IDLE_CHECK_S = 5.0
"""While following, how often to look at the job's record in case its last event was lost."""


async def job_events(store: JobStore, job: str, *, follow: bool) -> AsyncIterator[JobEvent]:
    """The events of `job` from the first one: up to the latest (or, following, to its end)."""
    subject = subjects.train_events(job)
    last = 0
    try:
        found = await store.js.get_last_msg(subjects.TRAIN_EVENTS_STREAM, subject)
        last = found.seq or 0
    except js_errors.NotFoundError:
        if not follow:
            return
    sub = await store.js.subscribe(
        subject,
        stream=subjects.TRAIN_EVENTS_STREAM,
        ordered_consumer=True,
        deliver_policy=DeliverPolicy.ALL,
    )
    try:
        while True:
            try:
                msg = await sub.next_msg(timeout=IDLE_CHECK_S)
            except (TimeoutError, nats.errors.TimeoutError):
                if not follow or (await store.get(job)).state.finished:
                    return
                continue
            event = unpack(msg.data, JobEvent.from_dict)
            yield event
            seq = msg.metadata.sequence.stream if msg.metadata.sequence else 0
            if not follow and seq >= last:
                return
            if follow and event.record is not None and event.record.state.finished:
                return
    finally:
        with contextlib.suppress(Exception):
            await sub.unsubscribe()


async def log_lines(store: JobStore, job: str, *, follow: bool) -> AsyncIterator[str]:
    """The log of `job`, line by line (without line ends).

    A finished job's stored log is read whole; otherwise the events are
    replayed, and with `follow` the lines arrive as the job writes them.
    """
    record = await store.get(job)
    if record.state.finished:
        stored = await store.read_log(job)
        if stored is not None:
            for line in stored.decode("utf-8", "replace").splitlines():
                yield line
            return
    next_seq = 0
    async for event in job_events(store, job, follow=follow):
        if event.kind != JobEvent.LOG:
            continue
        for offset, line in enumerate(event.lines):
            # A republished batch after a reconnect may repeat lines: skip what was seen.
            if event.seq + offset >= next_seq:
                next_seq = event.seq + offset + 1
                yield line
