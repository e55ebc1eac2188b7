"""Hedging and retries of mlbuffet.mesh.request on a real nats-server.

The responders here are plain NATS subscribers in the modelhost queue group:
one that never answers stands in for a host killed mid-request (silence is
all a caller sees of it), one that answers 503 for an overloaded host.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable

import pytest
from nats.aio.client import Client
from nats.aio.msg import Msg

from gateway.__main__ import parse_args
from mlbuffet.config import ConfigError, NatsConfig
from mlbuffet.mesh import request as nats_request
from mlbuffet.mesh.connection import close_quietly, connect, flush_subscriptions
from mlbuffet.mesh.hedging import HedgeConfig, Hedging, LatencyTracker, RetryBudget
from mlbuffet.protocol import subjects
from mlbuffet.protocol.errors import (
    DeadlineExceededError,
    ModelNotReadyError,
    OverloadedError,
    UnprocessableError,
)
from mlbuffet.protocol.wire import error_status, pack_error
from tests.conftest import eventually

SUBJECT = subjects.infer("hedged")
FAST = HedgeConfig(floor_s=0.05)

Responder = Callable[[Msg], Awaitable[None]]


async def respond(nc: Client, answer: Responder) -> None:
    await nc.subscribe(SUBJECT, subjects.MODELHOST_QUEUE, cb=answer)
    await flush_subscriptions(nc)


async def silent(msg: Msg) -> None:
    """A host that took the request and died: no answer, ever."""


async def send(nc: Client, hedging: Hedging, timeout_s: float = 2.0) -> bytes:
    return await nats_request.request(
        nc,
        SUBJECT,
        b"payload",
        time.time() + timeout_s,
        no_responders_wait_s=0.5,
        who="the test",
        hedging=hedging,
    )


async def test_requests_with_a_host_that_died_are_hedged_to_the_other_and_answered(
    nc: Client, nats_config: NatsConfig
):
    dying = await connect(nats_config, name="dying-host")
    taken = 0
    first_taken = asyncio.Event()

    async def took_it_and_died(msg: Msg) -> None:
        nonlocal taken
        taken += 1
        first_taken.set()

    async def host(msg: Msg) -> None:
        await msg.respond(b"ok")

    try:
        await respond(dying, took_it_and_died)
        await respond(nc, host)
        hedging = Hedging(FAST)
        requests = [asyncio.ensure_future(send(nc, hedging)) for _ in range(20)]
        await asyncio.wait_for(first_taken.wait(), 5)
        await dying.close()  # as a SIGKILL does: its socket closes, NATS drops its interest
        replies = await asyncio.gather(*requests)
    finally:
        await close_quietly(dying)
    print(f"\n{taken} of 20 requests went to a host that died: {hedging.counts.as_dict()}")
    assert replies == [b"ok"] * 20
    # Every request the dead host took was answered by a copy; on a loaded
    # machine a slow answer from the live host can also be overtaken by its
    # own copy, so there may be more hedge wins than requests lost.
    assert hedging.counts.hedged >= taken
    assert hedging.counts.hedge_wins >= taken


async def test_an_answer_to_the_first_send_still_wins_after_a_hedge(nc: Client):
    calls = 0

    async def slow_then_silent(msg: Msg) -> None:
        nonlocal calls
        calls += 1
        if calls == 1:
            # Far slower than the hedge delay (0.05 s), within the deadline.
            await asyncio.sleep(0.6)
            await msg.respond(b"first")

    await respond(nc, slow_then_silent)
    hedging = Hedging(FAST)
    assert await send(nc, hedging) == b"first"
    assert (calls, hedging.counts.hedged, hedging.counts.hedge_wins) == (3, 2, 0)


async def test_a_503_answer_is_retried_once_and_a_422_never(nc: Client):
    answers = [pack_error(OverloadedError("busy")), b"ok"]
    calls = 0

    async def overloaded_once(msg: Msg) -> None:
        nonlocal calls
        calls += 1
        await msg.respond(answers.pop(0) if answers else pack_error(UnprocessableError("no")))

    await respond(nc, overloaded_once)
    hedging = Hedging(FAST)
    assert await send(nc, hedging) == b"ok"
    assert (calls, hedging.counts.retried) == (2, 1)
    refused = await send(nc, hedging)
    assert error_status(refused) == 422
    assert (calls, hedging.counts.retried) == (3, 1)


async def test_a_host_that_keeps_refusing_is_asked_twice_then_its_503_is_the_answer(nc: Client):
    calls = 0

    async def overloaded(msg: Msg) -> None:
        nonlocal calls
        calls += 1
        await msg.respond(pack_error(OverloadedError("busy")))

    await respond(nc, overloaded)
    reply = await send(nc, Hedging(FAST))
    assert (error_status(reply), calls) == (503, 2)


async def test_the_budget_bounds_hedges_when_every_host_is_silent(nc: Client):
    await respond(nc, silent)
    config = HedgeConfig(floor_s=0.05, budget_ratio=0.1, budget_burst=5, budget_min_per_s=0)
    hedging = Hedging(config)
    results = await asyncio.gather(
        *(send(nc, hedging, timeout_s=0.4) for _ in range(50)), return_exceptions=True
    )
    assert all(isinstance(r, DeadlineExceededError) for r in results), results
    print(f"\n50 requests to a silent host: {hedging.counts.as_dict()}")
    # The burst of 5 plus a tenth of 50 requests: never a copy of every request.
    assert hedging.counts.hedged <= 5 + 5
    assert hedging.counts.refused > 0


@pytest.mark.parametrize("last_copy_after_s", [0.5, 0.0])
async def test_copies_all_lost_on_a_stopped_host_get_one_last_copy_once_nats_dropped_it(
    nc: Client, nats_config: NatsConfig, last_copy_after_s: float
):
    """A stopped host keeps its subscription until nats-server drops it: all 3 copies may land
    there. One more copy goes out `last_copy_after_s` after the third, which a live host answers."""
    stopped = await connect(nats_config, name="stopped-host")
    took: list[float] = []

    async def stuck(msg: Msg) -> None:
        took.append(time.monotonic())

    async def host(msg: Msg) -> None:
        await msg.respond(b"ok")

    hedging = Hedging(HedgeConfig(floor_s=0.05, last_copy_after_s=last_copy_after_s))
    try:
        await respond(stopped, stuck)  # the only host: every copy goes to it
        request = asyncio.ensure_future(send(nc, hedging, timeout_s=3.0))
        await eventually(lambda: len(took) == 3, timeout_s=2)
        await stopped.close()  # what nats-server does to a client that stopped answering PINGs
        await respond(nc, host)
        if last_copy_after_s:
            assert await request == b"ok"
            assert time.monotonic() - took[-1] >= last_copy_after_s
            assert (hedging.counts.hedged, hedging.counts.hedge_wins) == (3, 1)
        else:
            with pytest.raises(DeadlineExceededError):
                await request
            assert hedging.counts.hedged == 2
    finally:
        await close_quietly(stopped)


async def test_with_no_host_at_all_the_request_fails_with_503_after_the_wait(nc: Client):
    with pytest.raises(ModelNotReadyError):
        await send(nc, Hedging(FAST))


async def test_hedging_off_sends_once(nc: Client):
    calls = 0

    async def count(msg: Msg) -> None:
        nonlocal calls
        calls += 1

    await respond(nc, count)
    hedging = Hedging(HedgeConfig(enabled=False))
    with pytest.raises(DeadlineExceededError):
        await send(nc, hedging, timeout_s=0.5)
    assert calls == 1 and hedging.counts.requests == 0


def test_the_hedge_delay_follows_the_model_above_the_floor():
    fast, slow = LatencyTracker(0.25, 3.0), LatencyTracker(0.25, 3.0)
    for _ in range(64):
        fast.record(0.002)
        slow.record(0.150)
    assert fast.delay_s == 0.25
    assert slow.delay_s == pytest.approx(0.45)


def test_the_budget_allows_a_burst_then_a_tenth_of_the_requests():
    budget = RetryBudget(ratio=0.1, burst=3, min_per_s=0)
    assert [budget.withdraw() for _ in range(4)] == [True, True, True, False]
    for _ in range(20):
        budget.deposit()
    assert [budget.withdraw() for _ in range(3)] == [True, True, False]


def test_a_bad_hedge_setting_is_refused_with_its_name():
    with pytest.raises(ConfigError, match="--hedge-attempts"):
        HedgeConfig(max_attempts=0)


def test_the_gateway_takes_hedge_flags_and_environment():
    config, _ = parse_args(["--hedge-attempts", "1", "--hedge-after", "0.5"], {})
    assert (config.hedging.enabled, config.hedging.floor_s) == (False, 0.5)
    config, _ = parse_args([], {"MLBUFFET_HEDGE_BUDGET": "0.2"})
    assert (config.hedging.enabled, config.hedging.budget_ratio) == (True, 0.2)
    assert config.hedging.max_attempts == HedgeConfig().max_attempts
