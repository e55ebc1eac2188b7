"""Noticing that this modelhost completes nothing although it has runs to do.

A host whose onnxruntime runs all hang (a wedged kernel, a deadlocked
provider) stays subscribed: NATS keeps handing it its share of requests, and
callers' hedges can land on it again. Its event loop still runs (the runs are
in threads), so the host itself can tell and step aside: when runs are
pending and none has finished for `limit_s`, it is *stalled*; the service
then leaves the queue groups and answers "not ready" until a run finishes
again. (A process that runs no code at all, SIGSTOPped, cannot do this:
nats-server drops it after unanswered PINGs, mlbuffet/natsd/server.py.)

The limit follows the model: `max(floor, STALL_FACTOR x the slowest recent
run)`, warm-up included, so a model that takes 10 s a run is not taken for
stalled at the floor. Silence is counted in ticks of this host's own loop,
each worth at most MAX_TICK_S: time the loop did not see (the process was
stopped, or starved of CPU) is not evidence against the runs.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import deque
from collections.abc import Awaitable, Callable, Iterator
from contextlib import contextmanager
from enum import Enum

from actors.modelhost.batching import RequestExpired

log = logging.getLogger(__name__)

CHECK_EVERY_S = 0.1
MAX_TICK_S = 2 * CHECK_EVERY_S
"""The most silence one tick may add: a late tick means this process did not run meanwhile."""
STALL_FACTOR = 4.0
RECENT_RUNS = 32
"""Durations of finished runs kept; the slowest of them sets the limit."""


class Change(Enum):
    STALLED = "stalled"
    RECOVERED = "recovered"


class StallWatch:
    """Counts pending and finished runs; `tick` says when the host stalls or recovers.

    `floor_s` 0 turns it off: never stalled.
    """

    def __init__(self, floor_s: float) -> None:
        self.floor_s = floor_s
        self.stalled = False
        self.stalls = 0
        """Times this host stalled since start."""
        self.pending = 0
        """Runs started and not finished (waiting for a compute thread, or running)."""
        self.silent_s = 0.0
        """Silence seen while runs were pending: since the last finished run, or since work came."""
        self._finished = False
        """A run finished since the last tick."""
        self._recent: deque[float] = deque(maxlen=RECENT_RUNS)
        self._last_tick: float | None = None

    @property
    def limit_s(self) -> float:
        """Silence, with runs pending, after which the host is stalled."""
        slowest = max(self._recent, default=0.0)
        return max(self.floor_s, STALL_FACTOR * slowest)

    def record(self, run_s: float) -> None:
        """A run's duration that was not counted by `run()` (the warm-up of a model)."""
        self._recent.append(run_s)

    @contextmanager
    def run(self) -> Iterator[None]:
        """Around one request's run, from when it waits for a thread until it has its result."""
        self.pending += 1
        started = time.monotonic()
        stalls_before = self.stalls
        finished = False
        try:
            yield
            finished = True
        except RequestExpired:
            raise  # dropped from a batch queue unrun: says nothing of onnxruntime
        except Exception:
            finished = True  # onnxruntime answered, if with an error: it is not hung
            raise
        finally:
            # A cancelled wait (the host stops) says nothing of the run itself.
            self.pending -= 1
            if finished:
                self._finished = True
                self.silent_s = 0.0
                if self.stalls == stalls_before:  # a hung run must not raise the next limit
                    self._recent.append(time.monotonic() - started)

    def tick(self, now: float) -> Change | None:
        """Called every CHECK_EVERY_S by the host's loop; a change of state, or None."""
        elapsed = 0.0 if self._last_tick is None else min(now - self._last_tick, MAX_TICK_S)
        self._last_tick = now
        finished, self._finished = self._finished, False
        if self.stalled:
            if finished:
                self.stalled = False
                return Change.RECOVERED
            self.silent_s += elapsed
            return None
        if finished or not self.pending or self.floor_s <= 0:
            self.silent_s = 0.0
            return None
        self.silent_s += elapsed
        if self.silent_s >= self.limit_s:
            self.stalled = True
            self.stalls += 1
            return Change.STALLED
        return None

    async def watch(self, on_change: Callable[[Change], Awaitable[None]]) -> None:
        """Tick until cancelled; `on_change` acts on each change before the next tick."""
        loop = asyncio.get_running_loop()
        while True:
            await asyncio.sleep(CHECK_EVERY_S)
            change = self.tick(loop.time())
            if change is not None:
                try:
                    await on_change(change)
                except Exception:
                    log.exception("acting on %s failed", change.value)

    def reason(self) -> str:
        """Why a stalled host is not ready, for its probe and its log."""
        return (
            f"stalled: {self.pending} onnxruntime runs pending and none finished "
            f"for {self.silent_s:.1f} s (limit {self.limit_s:.1f} s)"
        )
