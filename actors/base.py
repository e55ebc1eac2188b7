"""The lifecycle every actor shares: start, drain, stop.

An actor subscribes in `on_start` and serves each message in a task of its
own (a nats-py subscription runs its callback one message at a time, so an
actor that waited inside the callback would serve one request at a time).
The tasks live in a bounded TaskSet: when it is full, `spawn` waits (NATS
holds further messages for us), while `offer` keeps a bounded backlog and
refuses the rest at once, so an actor can say "busy" instead of letting work
pile up in the client library's buffers.

Failure behaviour: if `on_start` raises, the actor stops what it started and
the error propagates to the caller of `start()`. `on_stop` errors are logged,
never raised, so `stop()` always finishes.
"""

from __future__ import annotations

import asyncio
import logging
from collections import deque
from collections.abc import Callable, Coroutine
from enum import Enum
from typing import Any, ClassVar, TypeVar

from nats.aio.client import Client
from nats.aio.subscription import Subscription

from mlbuffet.config import NatsConfig
from mlbuffet.mesh.connection import (
    NatsUnavailableError,
    close_quietly,
    connect,
    flush_subscriptions,
    while_connected,
)
from mlbuffet.roles.runner import StartupError, announce

log = logging.getLogger(__name__)

_T = TypeVar("_T")

DRAIN_TIMEOUT_S = 30.0


class TaskSet:
    """At most `limit` concurrent tasks, plus a backlog of at most `backlog` not started yet.

    `spawn` waits for room. `offer` never waits: it starts the work, queues it
    in the backlog (started, oldest first, as running tasks finish) or refuses
    it; the work is a coroutine function and its argument, so queued work is
    not a coroutine yet and refused work costs nothing. One set is meant to be
    used one way or the other.
    """

    def __init__(self, limit: int, backlog: int = 0) -> None:
        if limit < 1:
            raise ValueError("a TaskSet needs room for at least one task")
        if backlog < 0:
            raise ValueError("a TaskSet's backlog must not be negative")
        self.limit = limit
        self.backlog = backlog
        self._tasks: set[asyncio.Task[Any]] = set()
        self._queued: deque[tuple[Callable[[Any], Coroutine[Any, Any, Any]], Any, str | None]] = (
            deque()
        )
        self._room: deque[asyncio.Future[None]] = deque()

    def __len__(self) -> int:
        return len(self._tasks)

    @property
    def queued(self) -> int:
        """Offered work waiting in the backlog."""
        return len(self._queued)

    async def spawn(self, coro: Coroutine[Any, Any, Any], name: str | None = None) -> None:
        while len(self._tasks) >= self.limit:
            waiter = asyncio.get_running_loop().create_future()
            self._room.append(waiter)
            try:
                await waiter
            except BaseException:
                if waiter in self._room:
                    self._room.remove(waiter)
                elif not waiter.cancelled():
                    self._wake_one()  # room was handed to us: pass it on
                coro.close()  # never started: no "never awaited" warning
                raise
        self.start(coro, name)

    def offer(
        self, work: Callable[[_T], Coroutine[Any, Any, Any]], item: _T, name: str | None = None
    ) -> bool:
        """Start `work(item)` now or queue it; False (and nothing done) when the backlog is full too."""
        if len(self._tasks) < self.limit:
            self.start(work(item), name)
            return True
        if len(self._queued) < self.backlog:
            self._queued.append((work, item, name))
            return True
        return False

    def start(self, coro: Coroutine[Any, Any, Any], name: str | None = None) -> None:
        """Run `coro` now, over the limit if need be: for the little work that must never wait."""
        task = asyncio.create_task(coro, name=name)
        self._tasks.add(task)
        task.add_done_callback(self._done)

    def _done(self, task: asyncio.Task[Any]) -> None:
        self._tasks.discard(task)
        if self._queued and len(self._tasks) < self.limit:
            work, item, name = self._queued.popleft()
            self.start(work(item), name)
        if len(self._tasks) < self.limit:
            self._wake_one()
        if not task.cancelled() and (exc := task.exception()) is not None:
            log.error("task %s failed", task.get_name(), exc_info=exc)

    def _wake_one(self) -> None:
        while self._room:
            waiter = self._room.popleft()
            if not waiter.done():
                waiter.set_result(None)
                return

    async def wait(self, timeout_s: float) -> bool:
        """Wait for the running tasks and the backlog; True if they all finished in time."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout_s
        while self._tasks:
            left = deadline - loop.time()
            if left <= 0:
                return False
            await asyncio.wait(set(self._tasks), timeout=left)
        return True

    async def cancel(self) -> None:
        """Cancel the running tasks; work still in the backlog is dropped, never started."""
        self._queued.clear()
        tasks = set(self._tasks)
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)


class ActorState(str, Enum):
    """Where an actor is in its life; it only ever moves forward through these."""

    NEW = "new"
    STARTING = "starting"
    RUNNING = "running"
    DRAINING = "draining"
    STOPPED = "stopped"

    @property
    def winding_down(self) -> bool:
        """Draining or stopped: work that has not begun yet should not begin."""
        return self in (ActorState.DRAINING, ActorState.STOPPED)


class Actor:
    """Base of every actor: owns its subscriptions and its in-flight tasks."""

    role: ClassVar[str] = "actor"

    def __init__(
        self, nc: Client, node_id: str, *, max_inflight: int = 64, max_queued: int = 0
    ) -> None:
        self.nc = nc
        self.node_id = node_id
        self.tasks = TaskSet(max_inflight, max_queued)
        self._subscriptions: list[Subscription] = []
        self._state = ActorState.NEW

    @property
    def state(self) -> ActorState:
        return self._state

    @property
    def running(self) -> bool:
        return self._state is ActorState.RUNNING

    async def subscribe(self, subject: str, queue: str = "", **kwargs: Any) -> Subscription:
        """Subscribe with a callback; the subscription is drained and removed with the actor."""
        sub = await self.nc.subscribe(subject, queue=queue, **kwargs)
        self._subscriptions.append(sub)
        # Only once the server has the interest may we say we serve the subject.
        await flush_subscriptions(self.nc)
        return sub

    async def unsubscribe(self, sub: Subscription) -> None:
        """Stop one subscription gracefully: messages already delivered are still served."""
        if sub in self._subscriptions:
            self._subscriptions.remove(sub)
        try:
            await sub.drain()  # type: ignore[no-untyped-call]
        except Exception:
            log.debug("drain of %s failed", sub.subject, exc_info=True)

    async def start(self) -> None:
        if self._state is not ActorState.NEW:
            raise RuntimeError(f"{self.role} actor already {self._state.value}")
        self._state = ActorState.STARTING
        try:
            await self.on_start()
        except BaseException:
            await self.stop()
            raise
        self._state = ActorState.RUNNING
        log.info("%s %s started", self.role, self.node_id)

    async def drain(self, timeout_s: float = DRAIN_TIMEOUT_S) -> None:
        """Stop taking new work, finish what is in flight (up to `timeout_s`), then stop."""
        if self._state.winding_down:
            return
        self._state = ActorState.DRAINING
        subs, self._subscriptions = self._subscriptions, []
        started = asyncio.get_running_loop().time()
        # Draining needs the server (a flush per subscription): bounded, and
        # given up at once if NATS goes away at the same moment we do.
        drained = await while_connected(
            self.nc, asyncio.gather(*(self._drain_one(s) for s in subs)), timeout_s
        )
        if not drained and self.nc.is_connected:
            log.warning(
                "%s %s: subscriptions did not drain in %ss", self.role, self.node_id, timeout_s
            )
        left = max(0.0, timeout_s - (asyncio.get_running_loop().time() - started))
        if not await self.tasks.wait(left):
            log.warning(
                "%s %s: in-flight work still running after %ss; cancelling",
                self.role,
                self.node_id,
                timeout_s,
            )
        await self.stop()

    @staticmethod
    async def _drain_one(sub: Subscription) -> None:
        try:
            await sub.drain()  # type: ignore[no-untyped-call]
        except Exception:
            log.debug("drain of %s failed", sub.subject, exc_info=True)

    async def stop(self) -> None:
        """Stop now: unsubscribe, cancel in-flight work. Safe to call twice."""
        if self._state is ActorState.STOPPED:
            return
        self._state = ActorState.STOPPED
        subs, self._subscriptions = self._subscriptions, []
        for sub in subs:
            try:
                await sub.unsubscribe()
            except Exception:
                log.debug("unsubscribe of %s failed", sub.subject, exc_info=True)
        await self.tasks.cancel()
        try:
            await self.on_stop()
        except Exception:
            log.exception("%s %s: on_stop failed", self.role, self.node_id)
        log.info("%s %s stopped", self.role, self.node_id)

    async def on_start(self) -> None:
        """Subscribe and load what the actor needs; raise to refuse to start."""

    async def on_stop(self) -> None:
        """Release what on_start took; errors are logged, not raised."""

    async def __aenter__(self) -> Actor:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()


A = TypeVar("A", bound=Actor)


async def serve_actor(
    nats: NatsConfig,
    node_id: str,
    build: Callable[[Client], A],
    ready_line: Callable[[A], str],
    drain_timeout_s: float,
    stop: asyncio.Event,
) -> int:
    """The life of an actor process: connect, start, say it is ready, drain on `stop`."""
    try:
        nc = await connect(nats, name=node_id)
    except NatsUnavailableError as exc:
        raise StartupError(str(exc)) from None
    try:
        actor = build(nc)
        await actor.start()
        announce(ready_line(actor))
        await stop.wait()
        await actor.drain(drain_timeout_s)
    finally:
        await close_quietly(nc)
    return 0
