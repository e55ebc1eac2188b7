"""Everything stops (actors, then all three NATS nodes) and starts again on the same data.

Models with several versions, a default that is not the latest, settings and
descriptions, a finished training job: all of it is read back the same, every
file to the byte (sha256), and inference works again.
"""

from __future__ import annotations

import hashlib
import time
from pathlib import Path

import numpy as np
import pytest
from nats.aio.client import Client

from actors.modelhost.config import ModelhostConfig
from actors.modelhost.service import ModelhostService
from mlbuffet.client import Client as MlbuffetClient
from mlbuffet.mesh.connection import close_quietly, connect
from mlbuffet.protocol.jobs import JobRecord, JobState, TrainJob
from mlbuffet.protocol.records import ModelSettings
from mlbuffet.registry import ModelInspector, Registry
from mlbuffet.roles.node_ids import new_node_id
from mlbuffet.training import JobStore, new_job_id
from tests import onnx_models
from tests.nats_cluster import NatsCluster

pytestmark = pytest.mark.processes

IRIS_ROW = np.array([[2, 5, 1, 4]], dtype=np.float32)
SETTINGS = ModelSettings(max_batch_size=8, max_queue_delay_us=500, intra_op_threads=1)


async def fill(nc: Client, seed_iris: Path, tmp_path: Path) -> str:
    """iris:1,2 (default 1), adder:1,2,3 (default 2, with settings), a finished job."""
    registry, _ = await Registry.open(nc.jetstream())
    inspector = ModelInspector()
    try:
        iris = await inspector.inspect(seed_iris)
        for _ in range(2):
            await registry.add_version("iris", iris, description="iris", filename="iris.onnx")
        await registry.set_default("iris", 1)
        for constant in (1.0, 2.0, 3.0):
            path = onnx_models.add_constant(tmp_path / f"add_{constant:g}.onnx", constant)
            model = await inspector.inspect(path)
            await registry.add_version(
                "adder", model, description=f"adds {constant:g}", filename=path.name
            )
        await registry.set_default("adder", 2)
        await registry.set_settings("adder", SETTINGS)
        await registry.set_description("adder", "adds a constant")
    finally:
        inspector.close()
    jobs = await JobStore.open(nc.jetstream())
    job = new_job_id()
    spec = TrainJob(job=job, model="iris", script="train.py", requirements="r.txt", data=("d",))
    now = time.time()
    await jobs.create(
        JobRecord(
            spec=spec,
            state=JobState.SUCCEEDED,
            submitted_at=now - 5,
            updated_at=now,
            accepted_by="trainer-a",
            node="trainer-a",
            backend="process",
            started_at=now - 4,
            finished_at=now,
            exit_code=0,
            version=2,
        )
    )
    return job


async def snapshot(nc: Client, job: str) -> dict[str, object]:
    registry, _ = await Registry.open(nc.jetstream())
    records = {record.name: record for record in await registry.list()}
    files = {
        f"{name}:{version}": hashlib.sha256(await registry.read(name, version)).hexdigest()
        for name, record in records.items()
        for version in record.versions
    }
    jobs = await JobStore.open(nc.jetstream())
    return {"records": records, "files": files, "job": await jobs.get(job)}


async def serve_and_infer(cluster: NatsCluster) -> tuple[list[int], float]:
    """Start a modelhost, ask iris and adder through the client; stop the host (drain)."""
    host_nc = await connect(cluster.nats_config(0), name="test-modelhost")
    host = ModelhostService(
        host_nc, ModelhostConfig(nats=cluster.nats_config(0)), new_node_id("modelhost")
    )
    client = await MlbuffetClient.connect(cluster.urls[2], timeout=10, no_responders_wait=10)
    try:
        await host.start()
        iris = await client.infer("iris", {"float_input": IRIS_ROW})
        adder = await client.infer("adder", {"x": np.zeros((1, 4), dtype=np.float32)})
        return iris["output_label"].tolist(), float(adder["y"][0][0])
    finally:
        await client.close()
        await host.drain(5)
        await close_quietly(host_nc)


async def test_a_whole_restart_on_the_same_data_keeps_every_model_version_setting_and_job(
    cluster: NatsCluster, seed_iris: Path, tmp_path: Path
):
    nc = await connect(cluster.nats_config(), name="test-writer")
    try:
        job = await fill(nc, seed_iris, tmp_path)
        before = await snapshot(nc, job)
    finally:
        await close_quietly(nc)
    assert await serve_and_infer(cluster) == ([1], 2.0)

    started = time.monotonic()
    await cluster.stop()
    for index in range(cluster.nodes):  # same ports, same data directories
        await cluster.restart(index)
    await cluster.wait_for_jetstream()
    back = time.monotonic() - started

    nc = await connect(cluster.nats_config(), name="test-reader")
    try:
        after = await snapshot(nc, job)
    finally:
        await close_quietly(nc)
    print(
        f"\nwhole 3-node cluster stopped and started on its data in {back:.1f} s: "
        f"{len(after['records'])} models, {len(after['files'])} files, job {job} intact"
    )
    assert after == before
    records = after["records"]
    assert (records["iris"].default_version, sorted(records["iris"].versions)) == (1, [1, 2])
    assert (records["adder"].default_version, records["adder"].settings) == (2, SETTINGS)
    assert after["job"].state is JobState.SUCCEEDED
    assert await serve_and_infer(cluster) == ([1], 2.0)
