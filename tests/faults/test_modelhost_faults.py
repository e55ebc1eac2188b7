"""A modelhost dies (SIGKILL) or is replaced (SIGTERM) under load: no request fails.

Two real modelhost processes serve a slow model (about 8 ms a request) behind
the real gateway (in-process) or the NATS client; 16 callers keep requests in
flight. A killed host's requests get no answer: the caller hedges them to the
other host. A host told to stop drains: it finishes what it took and exits 0.
"""

from __future__ import annotations

import asyncio
import signal
from typing import Any

import pytest
from aiohttp.test_utils import TestClient

from gateway.service import MESH
from mlbuffet.client import Client
from tests.faults.conftest import SpawnModelhost, bounded_load, slow_input
from tests.modelhost_processes import ModelhostProcess

pytestmark = pytest.mark.processes

CALLERS = 16
KILL_AFTER_S = 1.0


async def post_prediction(gateway: TestClient[Any, Any]) -> str:
    response = await gateway.post(
        "/api/v1/models/slow/prediction", json={"values": slow_input().tolist()}
    )
    body = await response.json()
    if response.status != 200:
        raise AssertionError(f"{response.status}: {body}")
    return str(body["node"])


async def two_hosts(spawn_modelhost: SpawnModelhost) -> tuple[ModelhostProcess, ModelhostProcess]:
    return await asyncio.gather(spawn_modelhost("modelhost-victim"), spawn_modelhost("modelhost-b"))


async def test_a_modelhost_killed_under_gateway_load_fails_no_request(
    upload, slow_model, spawn_modelhost, rest_gateway
):
    await upload("slow", slow_model)
    victim, survivor = await two_hosts(spawn_modelhost)

    async def kill() -> None:
        await asyncio.sleep(KILL_AFTER_S)
        victim.process.send_signal(signal.SIGKILL)

    result = await bounded_load(lambda: post_prediction(rest_gateway), CALLERS, kill)
    counts = rest_gateway.server.app[MESH].hedging.counts
    print(
        f"\ngateway, {CALLERS} callers, modelhost SIGKILLed at {KILL_AFTER_S} s: "
        f"{result.line()}; hedging {counts.as_dict()}"
    )
    assert await victim.process.wait() == -signal.SIGKILL
    assert result.failed == []
    assert set(result.answered_by) == {victim.node_id, survivor.node_id}
    assert counts.hedged >= 1  # the victim had requests in flight (or the kill proves nothing)
    metrics = await (await rest_gateway.get("/metrics")).text()
    assert f"mlbuffet_inference_hedges_total {float(counts.hedged)}" in metrics


async def test_a_modelhost_killed_under_nats_client_load_fails_no_request(
    upload, slow_model, spawn_modelhost, nats_server
):
    await upload("slow", slow_model)
    victim, survivor = await two_hosts(spawn_modelhost)
    client = await Client.connect(nats_server.url, timeout=10)

    async def infer() -> str:
        result = await client.infer("slow", {"x": slow_input()})
        return result.node

    async def kill() -> None:
        await asyncio.sleep(KILL_AFTER_S)
        victim.process.send_signal(signal.SIGKILL)

    try:
        result = await bounded_load(infer, CALLERS, kill)
    finally:
        await client.close()
    counts = client.hedging.counts
    print(
        f"\nNATS client, {CALLERS} callers, modelhost SIGKILLed at {KILL_AFTER_S} s: "
        f"{result.line()}; hedging {counts.as_dict()}"
    )
    assert result.failed == []
    assert set(result.answered_by) == {victim.node_id, survivor.node_id}
    assert counts.hedged >= 1


async def test_a_rolling_restart_under_load_fails_no_request_and_the_old_host_exits_0(
    upload, slow_model, spawn_modelhost, rest_gateway
):
    await upload("slow", slow_model)
    old = await spawn_modelhost("modelhost-old")
    new: list[ModelhostProcess] = []

    async def replace() -> None:
        await asyncio.sleep(0.5)
        new.append(await spawn_modelhost("modelhost-new"))  # ready: it serves matmul
        await asyncio.sleep(0.5)
        old.process.send_signal(signal.SIGTERM)
        await asyncio.wait_for(old.process.wait(), 20)

    result = await bounded_load(lambda: post_prediction(rest_gateway), CALLERS, replace)
    counts = rest_gateway.server.app[MESH].hedging.counts
    log = old.log.read_text()
    print(
        f"\nrolling restart under {CALLERS} callers (new host up, old one SIGTERMed): "
        f"{result.line()}; hedging {counts.as_dict()}"
    )
    assert result.failed == []
    assert old.process.returncode == 0, log
    assert "cancelling" not in log, log  # nothing in flight was cut off by the drain timeout
    assert set(result.answered_by) == {old.node_id, new[0].node_id}
