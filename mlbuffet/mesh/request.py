"""One NATS request/reply with a deadline, its NATS failures mapped by mesh/errors.py.

The gateway and the Python client both call the mesh this way, so a program
that talks NATS directly sees the same error types (and statuses) as a REST
caller: no responders is 503, no answer in time is 504, a lost connection 503.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable, Mapping
from enum import Enum
from http import HTTPStatus

import nats.errors
from nats.aio.client import Client
from nats.aio.msg import Msg

from mlbuffet.mesh.errors import (
    check_payload,
    from_nats,
)
from mlbuffet.mesh.hedging import Hedging
from mlbuffet.mesh.reply_inbox import ReplyInbox, is_no_responders
from mlbuffet.protocol.errors import (
    DeadlineExceededError,
    MLBuffetError,
    ModelNotReadyError,
)
from mlbuffet.protocol.headers import deadline_header
from mlbuffet.protocol.wire import error_status

log = logging.getLogger(__name__)

RETRY_FIRST_WAIT_S = 0.05
RETRY_MAX_WAIT_S = 0.5
NO_RESPONDERS_CHECK_S = 1.0
"""How long the first no-responders check (does the model exist?) may take."""
PLACED_GRACE_S = 1.0
"""After a host said it loaded the model, how long no responders is still waited out: its
subscription may take that long to reach the other servers of a NATS cluster."""

PLACES_PER_REQUEST = 5
"""Place requests one inference request may send: a host short of room may evict the model
just placed for another before this request reaches it; beyond that, the pool is thrashing."""

Place = Callable[[float], Awaitable[object]]
"""Asks the pool to load the request's model within the given seconds (mesh/placement.py)."""

SERVICE_UNAVAILABLE = HTTPStatus.SERVICE_UNAVAILABLE.value


def no_modelhost() -> ModelNotReadyError:
    return ModelNotReadyError(
        "no modelhost serves this model right now; start one, or check that one can load it"
    )


async def request(
    nc: Client,
    subject: str,
    payload: bytes,
    deadline: float,
    *,
    no_responders_wait_s: float,
    who: str,
    headers: Mapping[str, str] | None = None,
    on_no_responders: Callable[[], Awaitable[None]] | None = None,
    hedging: Hedging | None = None,
    deadline_in_payload: bool = False,
    place: Place | None = None,
) -> bytes:
    """One request/reply before `deadline` (Unix time), with NATS errors mapped.

    No responders is retried until the deadline, at most `no_responders_wait_s`:
    right after an upload or a restart, modelhosts need a moment to take a model.
    `who` names the caller in the message of a lost connection ("the gateway").
    `on_no_responders` runs once, at the first no responders, to raise at once
    what waiting cannot fix (the client checks that the model exists: 404).
    With `hedging` (only for requests that are safe to run twice, as inference
    is) a request that has no answer within the hedge delay, or is answered
    503, is sent again: see HedgedRequest. With `deadline_in_payload` (an
    InferRequest that carries its deadline_ms) no deadline header is sent:
    without headers, neither side runs nats-py's header code. With `place`, a
    no responders asks the pool to load the model (no host holds it) and sends
    again once one has.
    """
    check_payload(nc, payload)
    all_headers = (
        dict(headers or {})
        if deadline_in_payload
        else {**deadline_header(deadline), **(headers or {})}
    )
    waiting = NoRespondersWait(time.monotonic() + no_responders_wait_s, on_no_responders, place)
    if hedging is not None and hedging.config.enabled:
        time_left = deadline - time.time()
        if time_left <= 0:
            raise DeadlineExceededError("no answer before the request's deadline")
        end = time.monotonic() + time_left
        return await HedgedRequest(nc, subject, payload, all_headers, end, hedging, who).run(
            waiting
        )
    while True:
        timeout = deadline - time.time()
        if timeout <= 0:
            raise DeadlineExceededError("no answer before the request's deadline")
        try:
            msg = await nc.request(subject, payload, timeout=timeout, headers=all_headers or None)
            return msg.data
        except nats.errors.NoRespondersError:
            wait = await waiting.next_wait(timeout)
        except nats.errors.Error as exc:
            silence = DeadlineExceededError(f"no answer from a modelhost within {timeout:.1f} s")
            raise from_nats(exc, who, timed_out=silence) or exc from None
        await asyncio.sleep(wait)


async def request_once(
    nc: Client,
    subject: str,
    payload: bytes,
    timeout_s: float,
    *,
    who: str,
    no_responders: MLBuffetError,
    timed_out: MLBuffetError,
    headers: dict[str, str] | None = None,
) -> bytes:
    """One request/reply, never retried, its NATS failures mapped (mlbuffet.mesh.errors).

    For a service that runs or does not (the metrics actor, a trainer) and for a
    readiness probe: `no_responders` and `timed_out` say what did not answer.
    """
    try:
        msg = await nc.request(subject, payload, timeout=timeout_s, headers=headers)
    except nats.errors.Error as exc:
        error = from_nats(exc, who, no_responders=no_responders, timed_out=timed_out)
        raise error or exc from None
    return msg.data


class NoRespondersWait:
    """The back-off after "no responders": short waits for a host to take the model, bounded."""

    def __init__(
        self,
        give_up_at: float,
        on_first: Callable[[], Awaitable[None]] | None,
        place: Place | None = None,
    ) -> None:
        self._give_up_at = give_up_at
        self._on_first = on_first
        self._place = place
        self._places_left = PLACES_PER_REQUEST
        self._wait = RETRY_FIRST_WAIT_S

    async def next_wait(self, time_left_s: float) -> float:
        """Seconds to wait before asking again; ModelNotReadyError (503) once waiting is over."""
        if self._on_first is not None:
            on_first, self._on_first = self._on_first, None
            await check_quickly(on_first)
        if self._place is not None and self._places_left > 0:
            self._places_left -= 1
            done = await placed(self._place, time_left_s)
            # The ask took time of its own: the wait for a host starts again after it.
            self._give_up_at = max(self._give_up_at, time.monotonic() + PLACED_GRACE_S)
            if done:
                return 0.0
        wait = self._wait
        if time.monotonic() + wait > self._give_up_at or time_left_s < wait:
            raise no_modelhost()
        self._wait = min(wait * 2, RETRY_MAX_WAIT_S)
        return wait


async def check_quickly(check: Callable[[], Awaitable[None]]) -> None:
    """Run `check`, raising only what it says of the request (a 404): not its own failures.

    The client's check reads the registry; right after a NATS node dies JetStream
    may not answer for seconds, and the request must not wait for it, or fail of it.
    """
    try:
        await asyncio.wait_for(check(), NO_RESPONDERS_CHECK_S)
    except MLBuffetError as exc:
        if exc.status >= 500:
            log.debug("no-responders check failed: %s", exc.message)
            return
        raise
    except (TimeoutError, nats.errors.Error):
        log.debug("no-responders check did not answer in %s s", NO_RESPONDERS_CHECK_S)


async def placed(place: Place, time_left_s: float) -> bool:
    """Whether a host loaded the model; raises what it said of the model (404, 507).

    "Not now" (503: no host takes place requests, none has room) and a place
    request that outlived its time are left to the ordinary waiting.
    """
    try:
        await place(time_left_s)
    except MLBuffetError as exc:
        if exc.status in PLACE_TRANSIENT:
            log.debug("placing the model failed: %s", exc.message)
            return False
        raise
    return True


PLACE_TRANSIENT = frozenset({503, 504})
"""Statuses of a failed place request that waiting (for another host, a restart) may cure."""


class Send(Enum):
    """Why a copy of a request goes out."""

    HEDGE = "hedge"
    """No answer within the hedge delay (the host may be dead): counts, takes a budget token."""
    RETRY = "retry"
    """A host answered 503 (overloaded, not ready): counts, takes a budget token."""
    RESEND = "resend"
    """No responders: no host saw the last copy; free, paced by NoRespondersWait."""


class HedgedRequest:
    """One inference request, sent again when its host is silent or refuses; first answer wins.

    Every copy has its own reply token on the connection's ReplyInbox and
    stays outstanding until the request ends, so a late answer to the first
    copy wins if it comes first. The common case, an answer within the hedge
    delay, costs what nc.request costs: one publish, one timer, one wake-up.
    """

    def __init__(
        self,
        nc: Client,
        subject: str,
        payload: bytes,
        headers: dict[str, str],
        end: float,
        hedging: Hedging,
        who: str,
    ) -> None:
        self.inbox = ReplyInbox.of(nc)
        self.subject = subject
        self.payload = payload
        self.headers = headers
        self.end = end
        """Monotonic time of the deadline."""
        self.hedging = hedging
        self.who = who
        self.tracker = hedging.tracker(subject)
        self.outstanding: dict[str, float] = {}
        """Token -> monotonic time sent, of every copy not answered yet."""
        self.arrived: list[tuple[str, Msg]] = []
        self.hedges: set[str] = set()
        """Tokens of the copies sent as hedges (a win of one is a hedge win)."""
        self._waiter: asyncio.Future[None] | None = None
        self.attempts = 0
        """Copies that reached, or may have reached, a host."""
        self.next_send: float | None = None
        self.next_kind = Send.HEDGE
        self.last_sent = 0.0
        """Monotonic time the latest copy was sent."""
        self.retried = False
        self.refusal: bytes | None = None
        """A 503 answer, returned if no better one comes."""
        self.error: MLBuffetError | None = None

    def deliver(self, token: str, msg: Msg) -> None:
        """A reply to one of our copies (called by the inbox)."""
        self.arrived.append((token, msg))
        if self._waiter is not None and not self._waiter.done():
            self._waiter.set_result(None)

    async def run(self, waiting: NoRespondersWait) -> bytes:
        self.hedging.counts.requests += 1
        self.hedging.budget.deposit()
        self.attempts = 1
        started = time.monotonic()
        await self._send(started)
        try:
            while True:
                now = time.monotonic()
                if now >= self.end:
                    raise self.error or DeadlineExceededError(
                        f"no answer from a modelhost within {self.end - started:.1f} s"
                    )
                if self.next_send is not None and now >= self.next_send:
                    await self._send_due(now)
                    continue
                if not self.outstanding:
                    if self.next_send is None:
                        if self.refusal is not None:
                            return self.refusal
                        raise self.error or no_modelhost()
                    await asyncio.sleep(self.next_send - now)
                    continue
                until = self.end if self.next_send is None else min(self.next_send, self.end)
                await self._wait(until - now)
                while self.arrived:
                    token, msg = self.arrived.pop(0)
                    sent = self.outstanding.pop(token, None)
                    if sent is None:
                        continue
                    answer = await self._take(msg, sent, waiting)
                    if answer is not None:
                        if token in self.hedges:
                            self.hedging.counts.hedge_wins += 1
                        return answer
        finally:
            for token in self.outstanding:
                self.inbox.forget(token)

    async def _wait(self, timeout_s: float) -> None:
        """Until a reply arrives or `timeout_s` has passed."""
        if self.arrived:
            return
        loop = asyncio.get_running_loop()
        waiter = self._waiter = loop.create_future()
        timer = loop.call_later(timeout_s, _wake, waiter)
        try:
            await waiter
        finally:
            timer.cancel()
            self._waiter = None

    async def _send(self, now: float) -> str:
        try:
            token = await self.inbox.send(self, self.subject, self.payload, self.headers)
        except nats.errors.Error as exc:
            raise from_nats(exc, self.who) or exc from None
        self.outstanding[token] = now
        self.last_sent = now
        self._plan(Send.HEDGE, now + self.tracker.delay_s)
        return token

    def _plan(self, kind: Send, at: float) -> None:
        config = self.hedging.config
        if kind is Send.RESEND or self.attempts < config.max_attempts:
            self.next_kind, self.next_send = kind, at
        elif (
            kind is Send.HEDGE
            and 1 < config.max_attempts == self.attempts
            and config.last_copy_after_s > 0
        ):
            # Every copy may sit on one stopped host; by then NATS has dropped it.
            self.next_kind, self.next_send = kind, self.last_sent + config.last_copy_after_s
        else:
            self.next_send = None

    async def _send_due(self, now: float) -> None:
        kind = self.next_kind
        if kind is not Send.RESEND:
            if not self.hedging.budget.withdraw():
                self.hedging.counts.refused += 1
                log.debug("retry budget spent: no %s of %s", kind.value, self.subject)
                self.next_send = None
                return
            if kind is Send.HEDGE:
                self.hedging.counts.hedged += 1
            else:
                self.hedging.counts.retried += 1
        self.attempts += 1
        token = await self._send(now)
        if kind is Send.HEDGE:
            self.hedges.add(token)

    async def _take(self, msg: Msg, sent: float, waiting: NoRespondersWait) -> bytes | None:
        """The payload if `msg` is the answer; else plan what comes next."""
        if is_no_responders(msg):
            # No host has the subject right now (a dead host's interest is gone and
            # the other has not taken the model yet): no host saw this copy.
            self.attempts -= 1
            try:
                wait = await waiting.next_wait(self.end - time.monotonic())
            except MLBuffetError as exc:
                if not self.outstanding:
                    raise
                self.error, self.next_send = exc, None
                return None
            self._plan(Send.RESEND, time.monotonic() + wait)
            return None
        status = error_status(msg.data)
        if status is None:
            self.tracker.record(time.monotonic() - sent)
            return msg.data
        if status != SERVICE_UNAVAILABLE:
            return msg.data  # a 4xx or 500 would be the same on any host
        # "Not now" from a host that is overloaded or not ready: another may take it, once.
        self.refusal = msg.data
        if self.outstanding:
            return None
        if self.retried or self.attempts >= self.hedging.config.max_attempts:
            return msg.data
        self.retried = True
        self._plan(Send.RETRY, time.monotonic())
        return None


def _wake(waiter: asyncio.Future[None]) -> None:
    if not waiter.done():
        waiter.set_result(None)
