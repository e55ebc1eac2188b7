"""Dynamic batching of one model version: requests that arrive close together run as one.

The knobs are Triton's (see ModelSettings): a batch is sent as soon as it
holds `max_batch_size` rows or a preferred number of rows, else when its first
request has waited `max_queue_delay_us`. A batch also waits for a free
session, so under load requests pile up and batches grow by themselves.

Requests are validated (ModelRuntime.prepare) before they get here, so a bad
one fails alone. Only requests with the same trailing shapes, dtypes and
requested outputs are stacked; their rows are concatenated along dimension 0
and the outputs split back by row counts. If a stacked run fails on its
input, or a model's output does not have one entry per row, each request is
run again on its own: a neighbour's fault never becomes a request's error.
"""

from __future__ import annotations

import asyncio
import time
from collections import deque
from collections.abc import Hashable, Sequence
from concurrent.futures import Executor
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from actors.modelhost.runtime import Computed, Feeds, ModelRuntime, rows_of, to_output
from mlbuffet.protocol.errors import MLBuffetError, UnprocessableError
from mlbuffet.protocol.inference import Output


class RequestExpired(Exception):
    """The request's deadline passed while it waited for a batch: nobody wants the answer."""


@dataclass(slots=True, eq=False)
class Job:
    feeds: Feeds
    names: tuple[str, ...]
    rows: int
    key: Hashable
    arrived: float
    """time.perf_counter() at arrival."""
    deadline_ms: int | None
    """Unix time in milliseconds after which the caller has given up."""
    future: asyncio.Future[Computed] = field(
        default_factory=lambda: asyncio.get_running_loop().create_future()
    )

    def expired(self, now_ms: float) -> bool:
        return self.deadline_ms is not None and self.deadline_ms <= now_ms


def stack_key(feeds: Feeds, names: tuple[str, ...]) -> Hashable:
    """Requests with equal keys can be concatenated along dimension 0."""
    return (
        names,
        tuple(sorted((name, a.dtype.str, a.shape[1:]) for name, a in feeds.items())),
    )


class Batcher:
    """Forms batches for one ModelRuntime and runs them on its sessions."""

    def __init__(self, runtime: ModelRuntime, executor: Executor) -> None:
        settings = runtime.settings
        self.runtime = runtime
        self.executor = executor
        self.max_batch_size = settings.max_batch_size
        self.delay_s = settings.max_queue_delay_us / 1e6
        self.preferred = frozenset(settings.preferred_batch_sizes)
        self.pending: deque[Job] = deque()
        self._slots = asyncio.Semaphore(len(runtime.sessions))
        self._arrival = asyncio.Event()
        self._dispatcher: asyncio.Task[None] | None = None
        self._runs: set[asyncio.Task[None]] = set()

    async def infer(
        self,
        feeds: Feeds,
        names: tuple[str, ...],
        *,
        arrived: float,
        deadline_ms: int | None,
    ) -> Computed:
        """Compute one validated request, in a batch when others can join it.

        RequestExpired if its deadline passes while it waits.
        """
        rows = rows_of(feeds)
        if rows is None or rows < 1 or rows > self.max_batch_size:
            # Too large to share a run, or not stackable at all: it runs alone.
            async with self._slots:
                return await self._run_alone(feeds, names)
        job = Job(feeds, names, rows, stack_key(feeds, names), arrived, deadline_ms)
        self.pending.append(job)
        self._arrival.set()
        if self._dispatcher is None:
            self._dispatcher = asyncio.create_task(self._dispatch(), name="batcher")
        return await job.future

    async def _run_alone(self, feeds: Feeds, names: tuple[str, ...]) -> Computed:
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self.executor, self.runtime.compute, feeds, names)

    # -- forming batches -------------------------------------------------------

    async def _dispatch(self) -> None:
        """Send batches while requests wait; ends when none is left (the next one restarts it)."""
        try:
            while self.pending:
                await self._slots.acquire()
                try:
                    batch = await self._gather()
                except BaseException:
                    self._slots.release()
                    raise
                if not batch:
                    self._slots.release()
                    continue
                task = asyncio.create_task(self._run(batch), name="batch-run")
                self._runs.add(task)
                task.add_done_callback(self._runs.discard)
        finally:
            self._dispatcher = None

    async def _gather(self) -> list[Job]:
        """Wait until a batch is due (full, preferred size, or delay out); take it off the queue."""
        while True:
            self._drop_gone()
            if not self.pending:
                return []
            first = self.pending[0]
            rows = sum(job.rows for job in self._stackable(first))
            if rows >= self.max_batch_size or rows in self.preferred:
                return self._take(first, timed_out=False)
            remaining = first.arrived + self.delay_s - time.perf_counter()
            if remaining <= 0:
                return self._take(first, timed_out=True)
            self._arrival.clear()
            try:
                await asyncio.wait_for(self._arrival.wait(), remaining)
            except TimeoutError:
                pass

    def _stackable(self, first: Job) -> list[Job]:
        """Queued jobs that can share `first`'s run, in arrival order, within max_batch_size."""
        chosen: list[Job] = []
        rows = 0
        for job in self.pending:
            if job.key == first.key and rows + job.rows <= self.max_batch_size:
                chosen.append(job)
                rows += job.rows
                if rows == self.max_batch_size:
                    break
        return chosen

    def _take(self, first: Job, *, timed_out: bool) -> list[Job]:
        chosen = self._stackable(first)
        if timed_out and self.preferred:
            # Out of time: send the longest prefix of a preferred size, if there is one.
            rows = 0
            best = 0
            for i, job in enumerate(chosen, 1):
                rows += job.rows
                if rows in self.preferred:
                    best = i
            if best:
                chosen = chosen[:best]
        taken = set(map(id, chosen))
        self.pending = deque(job for job in self.pending if id(job) not in taken)
        return chosen

    def _drop_gone(self) -> None:
        """Forget requests whose caller gave up: deadline passed, or cancelled (drain)."""
        now_ms = time.time() * 1000
        kept: deque[Job] = deque()
        for job in self.pending:
            if job.future.done():
                continue
            if job.expired(now_ms):
                job.future.set_exception(RequestExpired())
                continue
            kept.append(job)
        self.pending = kept

    # -- running them ----------------------------------------------------------

    async def _run(self, batch: list[Job]) -> None:
        loop = asyncio.get_running_loop()
        try:
            try:
                shares = await loop.run_in_executor(
                    self.executor,
                    _run_stacked,
                    self.runtime,
                    [job.feeds for job in batch],
                    [job.rows for job in batch],
                    batch[0].names,
                )
            except UnprocessableError:
                shares = None  # one of them did not fit: find out which, alone
            if shares is None:
                for job in batch:
                    await self._settle_alone(job)
                return
            for job, share in zip(batch, shares, strict=True):
                if not job.future.done():
                    job.future.set_result(share)
        except Exception as exc:
            for job in batch:
                if not job.future.done():
                    job.future.set_exception(exc)
        except BaseException:
            for job in batch:
                job.future.cancel()
            raise
        finally:
            self._slots.release()

    async def _settle_alone(self, job: Job) -> None:
        if job.future.done():
            return
        try:
            result = await self._run_alone(job.feeds, job.names)
        except MLBuffetError as exc:
            if not job.future.done():
                job.future.set_exception(exc)
            return
        if not job.future.done():
            job.future.set_result(result)


def _run_stacked(
    runtime: ModelRuntime, feeds: list[Feeds], rows: list[int], names: Sequence[str]
) -> list[Computed] | None:
    """In a compute thread: concatenate, run once, split back. None if the outputs cannot be split."""
    if len(feeds) == 1:
        stacked = feeds[0]
    else:
        stacked = {name: np.concatenate([f[name] for f in feeds]) for name in feeds[0]}
    values, started, compute_s = runtime.timed_run(stacked, names)
    total = sum(rows)
    shares = split_outputs(names, values, rows)
    if shares is None:
        return None
    return [
        Computed(outputs, started, compute_s, total, own)
        for outputs, own in zip(shares, rows, strict=True)
    ]


def split_outputs(
    names: Sequence[str], values: Sequence[Any], rows: Sequence[int]
) -> list[tuple[Output, ...]] | None:
    """Each request's rows of every output; None unless every output has one entry per row."""
    total = sum(rows)
    bounds = []
    start = 0
    for count in rows:
        bounds.append((start, start + count))
        start += count
    shares: list[list[Output]] = [[] for _ in rows]
    for name, value in zip(names, values, strict=True):
        if isinstance(value, np.ndarray):
            if value.ndim == 0 or value.shape[0] != total:
                return None
        elif not isinstance(value, list) or len(value) != total:
            return None  # a sequence output (ZipMap) has one entry per row; anything else: no
        for share, (a, b) in zip(shares, bounds, strict=True):
            share.append(to_output(name, value[a:b]))
    return [tuple(share) for share in shares]
