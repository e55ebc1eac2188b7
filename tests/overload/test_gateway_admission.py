"""A gateway bounds its own inferences, says when to retry, and takes a deadline from the caller.

A real gateway app on a real nats-server, with an in-process modelhost
actor and the slow spin model behind it.
"""

from __future__ import annotations

import asyncio
import time

import pytest

from gateway.admission import INFERENCE_SLOTS, TIMEOUT_HEADER
from tests.conftest import eventually
from tests.overload.conftest import SLOW_REPS, WIDTH, spin_values


def v2_body(value: float, reps: int) -> dict:
    return {
        "inputs": [
            {"name": "x", "shape": [1, WIDTH], "datatype": "FP32", "data": [value] * WIDTH},
            {"name": "reps", "shape": [2], "datatype": "INT64", "data": [reps, 1]},
        ]
    }


async def v1(gateway, value: float, reps: int, headers: dict[str, str] | None = None):
    response = await gateway.post(
        "/api/v1/models/spin/prediction",
        json={"values": spin_values(int(value), reps)},
        headers=headers or {},
    )
    return response, await response.json()


async def v2(gateway, value: float, reps: int, headers: dict[str, str] | None = None):
    response = await gateway.post(
        "/v2/models/spin/infer", json=v2_body(value, reps), headers=headers or {}
    )
    return response, await response.json()


@pytest.fixture
async def spin_served(upload, spin_file, start_modelhost):
    await upload("spin", spin_file)
    host = await start_modelhost(workers=2)
    await eventually(lambda: "spin" in host.served)
    return host


def handled(host) -> int:
    """Every inference request the host has seen, whatever became of it."""
    stats = host.stats
    done = sum(s.success + s.failure for s in stats.versions.values())
    return (
        done + stats.in_flight + host.tasks.queued + stats.refused + stats.expired + stats.rejected
    )


async def test_inferences_past_the_gateways_limit_get_503_with_retry_after_without_nats(
    make_gateway, spin_served
):
    gateway = await make_gateway(max_inferences=2)
    slow = [
        asyncio.create_task(v1(gateway, 1, SLOW_REPS)),
        asyncio.create_task(v2(gateway, 2, SLOW_REPS)),
    ]
    slots = gateway.app[INFERENCE_SLOTS]
    await eventually(lambda: slots.used == 2 and handled(spin_served) == 2)

    response, body = await v1(gateway, 3, 1)
    assert response.status == 503, body
    assert response.headers["Retry-After"] == "1"
    assert "limit of 2 inference requests" in body["http_status"]["description"]
    response, body = await v2(gateway, 3, 1)
    assert response.status == 503, body
    assert response.headers["Retry-After"] == "1"
    assert "limit of 2" in body["error"]
    assert handled(spin_served) == 2  # refused without a NATS request

    for task in slow:
        response, _ = await task
        assert response.status == 200
    assert slots.used == 0
    response, body = await v1(gateway, 4, 1)
    assert response.status == 200 and body["values"] == spin_values(4, 1)["x"]


async def test_a_full_modelhost_is_a_503_with_retry_after_on_both_apis(
    make_gateway, upload, spin_file, start_modelhost
):
    await upload("spin", spin_file)
    host = await start_modelhost(workers=1, max_inflight=1, max_queued=0)
    await eventually(lambda: "spin" in host.served)
    gateway = await make_gateway()
    slow = asyncio.create_task(v1(gateway, 1, SLOW_REPS))
    await eventually(lambda: host.stats.in_flight == 1)

    response, body = await v1(gateway, 2, 1)
    assert response.status == 503 and response.headers["Retry-After"] == "1", body
    assert "at capacity" in body["http_status"]["description"]
    response, body = await v2(gateway, 2, 1)
    assert response.status == 503 and response.headers["Retry-After"] == "1", body
    assert "at capacity" in body["error"]
    # Each refused request was sent to a host again once (hedging retries a 503), then answered.
    assert host.stats.refused == 4
    response, _ = await slow
    assert response.status == 200


@pytest.mark.parametrize("value", ["abc", "0", "-1", "nan", "inf", "", "1e400"])
async def test_a_bad_timeout_header_is_a_400_that_names_it(make_gateway, spin_served, value):
    gateway = await make_gateway()
    headers = {TIMEOUT_HEADER: value}
    response, body = await v1(gateway, 1, 1, headers)
    assert response.status == 400, body
    assert TIMEOUT_HEADER in body["http_status"]["description"]
    assert "positive number of seconds" in body["http_status"]["description"]
    response, body = await v2(gateway, 1, 1, headers)
    assert response.status == 400, body
    assert TIMEOUT_HEADER in body["error"]


async def test_a_short_timeout_header_on_a_slow_model_is_a_fast_504(make_gateway, spin_served):
    gateway = await make_gateway(request_timeout_s=60)
    for call in (v1, v2):
        started = time.monotonic()
        response, body = await call(gateway, 1, SLOW_REPS, {TIMEOUT_HEADER: "0.05"})
        took = time.monotonic() - started
        print(
            f"\n{call.__name__} with {TIMEOUT_HEADER}: 0.05 on a slow run: {response.status} in {took:.2f} s"
        )
        assert response.status == 504, body
        assert "Retry-After" not in response.headers
        assert took < 10  # nowhere near the gateway's own 60 s


async def test_a_timeout_header_above_the_cap_is_capped_not_refused(make_gateway, spin_served):
    gateway = await make_gateway(max_request_timeout_s=120)
    response, body = await v1(gateway, 5, 1, {TIMEOUT_HEADER: "86400"})
    assert response.status == 200 and body["values"] == spin_values(5, 1)["x"]
    response, body = await v2(gateway, 5, 1, {TIMEOUT_HEADER: "2.5"})
    assert response.status == 200, body
