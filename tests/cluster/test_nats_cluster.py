"""MLBuffet on a real 3-node NATS cluster: replicated registry, and a node that dies.

The three nats-server processes stand in for three machines (see
tests/nats_cluster.py); the registry, the modelhost and the client each
attach to a different node, so every request crosses the cluster's routes.
"""

from __future__ import annotations

import asyncio
import time

import nats.errors
import numpy as np
import pytest

from actors.modelhost.config import ModelhostConfig
from actors.modelhost.service import ModelhostService
from mlbuffet.client import Client as MlbuffetClient
from mlbuffet.mesh.connection import close_quietly, connect
from mlbuffet.protocol import subjects
from mlbuffet.protocol.errors import MLBuffetError
from mlbuffet.registry import ModelInspector, Registry
from mlbuffet.roles.node_ids import new_node_id
from tests.actors.conftest import arrays, infer
from tests.nats_cluster import NatsCluster

pytestmark = pytest.mark.processes

IRIS_ROW = np.array([[2, 5, 1, 4]], dtype=np.float32)
LOAD_S = 12.0
"""Bound of the load loop that runs through the node's death."""
RECOVERY_LIMIT_S = 8.0
REQUEST_TIMEOUT_S = 10.0
"""Deadline of each request: long enough to wait out the modelhost's reconnection."""
AFTER_KILL_S = 3.0
"""Load kept up after the kill once answers flow again."""


async def replicas_of(registry: Registry) -> tuple[int, int]:
    js = registry.kv._js
    kv = await js.stream_info(f"KV_{subjects.MODELS_BUCKET}")
    files = await js.stream_info(f"OBJ_{subjects.FILES_BUCKET}")
    return kv.config.num_replicas or 1, files.config.num_replicas or 1


async def test_the_registry_has_three_replicas_on_a_three_node_cluster(cluster):
    nc = await connect(cluster.nats_config(1), name="test-registry")
    try:
        registry, created = await Registry.open(nc.jetstream())
        assert created
        assert await replicas_of(registry) == (3, 3)
    finally:
        await close_quietly(nc)


async def test_a_single_server_gets_one_replica(nc):
    registry, _ = await Registry.open(nc.jetstream())
    assert await replicas_of(registry) == (1, 1)


async def test_a_node_dies_and_nothing_is_lost_and_inference_resumes(cluster, seed_iris):
    """Modelhost on node 1, client on node 2, registry writer on any node; node 1 is SIGKILLed."""
    writer = await connect(cluster.nats_config(), name="test-writer")
    client = await connect(cluster.nats_config(2), name="test-client")
    host_nc = await connect(cluster.nats_config(1), name="test-modelhost")
    inspector = ModelInspector()
    host = ModelhostService(
        host_nc, ModelhostConfig(nats=cluster.nats_config(1)), new_node_id("modelhost")
    )
    try:
        registry, _ = await Registry.open(writer.jetstream())
        model = await inspector.inspect(seed_iris)
        for _ in range(2):
            await registry.add_version("iris", model, description="seed", filename="iris.onnx")
        await registry.set_default("iris", 1)
        before = await registry.get("iris")
        await host.start()
        # The host subscribed through node 1; node 2 hears of that interest a moment later
        # (longer on a loaded machine), and until then answers "no responders".
        give_up = time.monotonic() + 10
        while True:
            try:
                first = await infer(client, "iris", {"float_input": IRIS_ROW})
                break
            except nats.errors.NoRespondersError:
                assert time.monotonic() < give_up, "node 2 never saw the modelhost's interest"
                await asyncio.sleep(0.05)
        assert arrays(first)["output_label"].tolist() == [1]

        assert host_nc.connected_url is not None
        assert host_nc.connected_url.port == cluster.configs[1].port

        caller = MlbuffetClient(
            client, timeout=REQUEST_TIMEOUT_S, no_responders_wait=REQUEST_TIMEOUT_S
        )
        ok, failed, longest_gap = await load_through_a_node_death(caller, cluster, node=1)
        registry_back = await registry_answers_again(registry)
        print(
            f"\n3-node cluster, node 1 SIGKILLed under load: {ok} requests answered, {failed} "
            f"failed, longest wait between answers {longest_gap:.2f} s; registry answered "
            f"{registry_back:.2f} s after the load; hedging {caller.hedging.counts.as_dict()}"
        )
        # The request the dead node held gets no answer: the caller sends it again, and
        # waits (no responders) while the modelhost reconnects to another node.
        assert failed == 0
        assert longest_gap < RECOVERY_LIMIT_S
        assert host_nc.connected_url.port != cluster.configs[1].port

        after = await registry.get("iris")
        assert after == before
        assert (after.default_version, sorted(after.versions)) == (1, [1, 2])
        data = await registry.read("iris", 2)
        assert len(data) == after.versions[2].size
    finally:
        await host.drain(5)
        inspector.close()
        for nc in (writer, client, host_nc):
            await close_quietly(nc)


async def load_through_a_node_death(
    client: MlbuffetClient, cluster: NatsCluster, node: int
) -> tuple[int, int, float]:
    """One request at a time for LOAD_S seconds; the node dies a second in.

    Returns answered and failed counts, and the longest time between two
    answers from the kill on (how long inference was away).
    """
    ok = failed = 0
    killed_at = last_answer = 0.0
    longest_gap = 0.0
    started = time.monotonic()
    while time.monotonic() - started < LOAD_S:
        if not killed_at and time.monotonic() - started > 1.0:
            cluster.kill(node)
            killed_at = last_answer = time.monotonic()
        try:
            response = await client.infer("iris", {"float_input": IRIS_ROW})
        except (MLBuffetError, nats.errors.Error):
            failed += 1
            await asyncio.sleep(0.05)
            continue
        assert response["output_label"].tolist() == [1]
        ok += 1
        if killed_at:
            now = time.monotonic()
            longest_gap = max(longest_gap, now - last_answer)
            last_answer = now
            if now - killed_at > AFTER_KILL_S:
                break
    assert killed_at, "the load loop ended before the kill"
    assert last_answer > killed_at, f"no answer within {LOAD_S - 1:.0f} s of the kill"
    return ok, failed, longest_gap


async def registry_answers_again(registry: Registry, timeout_s: float = 15.0) -> float:
    """Seconds until the registry answers reads of a record and a file (its streams may be
    electing new leaders)."""
    started = time.monotonic()
    while True:
        try:
            await asyncio.wait_for(registry.get("iris"), 2)
            await asyncio.wait_for(registry.read("iris", 1), 2)
            return time.monotonic() - started
        except (TimeoutError, nats.errors.Error):
            if time.monotonic() - started > timeout_s:
                raise
            await asyncio.sleep(0.1)
