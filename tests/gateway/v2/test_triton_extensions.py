"""Triton's model configuration and statistics extensions, read by Triton's own client and tool.

The statistics are the modelhosts' counters, so every figure is checked
against requests this test made and nothing else.
"""

from __future__ import annotations

import asyncio
import subprocess
from typing import Any

import numpy as np
import pytest
import tritonclient.http as triton
from aiohttp.test_utils import TestClient
from tritonclient.utils import InferenceServerException

from bench.peers.venvs import ENVS, make, perf_analyzer_command
from mlbuffet.config import NatsConfig
from mlbuffet.mesh.connection import close_quietly, connect
from mlbuffet.protocol import subjects
from mlbuffet.protocol.inference import InferRequest, Tensor
from mlbuffet.protocol.records import ModelSettings
from mlbuffet.protocol.wire import pack, unpack_map
from mlbuffet.registry import Registry
from tests.conftest import eventually
from tests.gateway.v2.test_tritonclient import triton_infer, url_of
from tests.onnx_models import ModelFiles

PERF_ANALYZER_REQUESTS = 200


def read(url: str, call: str, *args: Any) -> Any:
    client = triton.InferenceServerClient(url)
    try:
        return getattr(client, call)(*args)
    finally:
        client.close()


async def iris_stats(v2: TestClient[Any, Any]) -> dict[str, Any]:
    answer = await asyncio.to_thread(read, url_of(v2), "get_inference_statistics", "sk_iris")
    [entry] = answer["model_stats"]
    return entry  # type: ignore[no-any-return]


async def test_config_of_a_batchable_model_lists_dims_without_the_batch(
    v2: TestClient[Any, Any],
) -> None:
    config = await asyncio.to_thread(read, url_of(v2), "get_model_config", "sk_iris")
    assert config["name"] == "sk_iris"
    assert config["platform"] == "onnxruntime_onnx"
    assert config["max_batch_size"] == 1024  # no batching set: the registry's largest batch
    assert config["input"] == [{"name": "X", "data_type": "TYPE_FP32", "dims": [4]}]
    assert config["output"] == [
        {"name": "output_label", "data_type": "TYPE_INT64", "dims": [1], "reshape": {"shape": []}},
        {
            "name": "output_probability",
            "data_type": "TYPE_STRING",
            "dims": [1],
            "reshape": {"shape": []},
        },
    ]
    assert "dynamic_batching" not in config
    versioned = await asyncio.to_thread(read, url_of(v2), "get_model_config", "sk_iris", "1")
    assert versioned == config


async def test_config_says_dynamic_batching_once_the_settings_enable_it(
    v2: TestClient[Any, Any], registry: Registry
) -> None:
    await registry.set_settings(
        "two_inputs",
        ModelSettings(max_batch_size=8, max_queue_delay_us=500, preferred_batch_sizes=(4,)),
    )

    async def batching() -> bool:
        config = await asyncio.to_thread(read, url_of(v2), "get_model_config", "two_inputs")
        return "dynamic_batching" in config

    await eventually(batching)
    config = await asyncio.to_thread(read, url_of(v2), "get_model_config", "two_inputs")
    assert config["max_batch_size"] == 8
    assert config["dynamic_batching"] == {
        "preferred_batch_size": [4],
        "max_queue_delay_microseconds": 500,
    }
    assert [i["dims"] for i in config["input"]] == [[2], [2]]


async def test_config_of_a_fixed_shape_model_has_no_batch_dimension(
    v2: TestClient[Any, Any], upload: Any, model_files: ModelFiles
) -> None:
    await upload("fixed", model_files.squeezenet)  # input [1, 3, 224, 224]

    async def listed() -> bool:
        return (await v2.get("/v2/models/fixed/config")).status == 200

    await eventually(listed)
    config = await asyncio.to_thread(read, url_of(v2), "get_model_config", "fixed")
    metadata = await asyncio.to_thread(read, url_of(v2), "get_model_metadata", "fixed")
    assert config["max_batch_size"] == 0
    assert [i["dims"] for i in config["input"]] == [[1, 3, 224, 224]]
    assert [o["dims"] for o in config["output"]] == [o["shape"] for o in metadata["outputs"]]


async def test_config_and_stats_of_unknown_models_and_versions_are_404(
    v2: TestClient[Any, Any],
) -> None:
    for path in (
        "/v2/models/no_such_model/config",
        "/v2/models/sk_iris/versions/9/config",
        "/v2/models/no_such_model/stats",
        "/v2/models/sk_iris/versions/9/stats",
    ):
        response = await v2.get(path)
        assert response.status == 404, path
        assert "error" in await response.json()


async def test_stats_count_rows_runs_successes_and_failures_apart(
    v2: TestClient[Any, Any], nats_config: NatsConfig
) -> None:
    before = await iris_stats(v2)
    assert before["inference_count"] == 0
    rows = np.array([[5.1, 3.5, 1.4, 0.2], [6.7, 3.0, 5.2, 2.3], [5.9, 3.0, 4.2, 1.5]], np.float32)
    for _ in range(2):
        await asyncio.to_thread(
            triton_infer, url_of(v2), "sk_iris", {"X": rows}, ["output_label"], bool, bool
        )
    # A request the modelhost itself refuses (the gateway would catch it before): wrong input name.
    nc = await connect(nats_config, name="test-bad-request")
    try:
        bad = InferRequest(
            model="sk_iris", inputs=(Tensor("nope", "FP32", (1, 4), bytes(16)),), outputs=()
        )
        reply = await nc.request(subjects.infer("sk_iris"), pack(bad), timeout=10)
        assert "error" in unpack_map(reply.data)
    finally:
        await close_quietly(nc)

    async def counted() -> bool:
        entry = await iris_stats(v2)
        return bool(entry["inference_stats"]["fail"]["count"] == 1)

    await eventually(counted)  # the gateway learns of the modelhost from its heartbeats
    entry = await iris_stats(v2)
    stats = entry["inference_stats"]
    assert entry["name"] == "sk_iris" and entry["version"] == "1"
    assert entry["inference_count"] == 6  # rows, as Triton counts them
    assert entry["execution_count"] == 2  # one run per request: no batching
    assert stats["success"]["count"] == 2
    assert stats["fail"]["count"] == 1
    assert stats["success"]["ns"] > 0 and stats["fail"]["ns"] > 0
    assert stats["compute_infer"]["count"] == 2
    assert 0 < stats["compute_infer"]["ns"] <= stats["success"]["ns"]
    assert entry["last_inference"] > 0
    every = await asyncio.to_thread(read, url_of(v2), "get_inference_statistics")
    names = {e["name"] for e in every["model_stats"]}
    assert names == {"all_types", "mixed", "wide", "two_inputs", "sk_iris"}


async def test_unknown_model_statistics_raise_in_tritonclient(v2: TestClient[Any, Any]) -> None:
    with pytest.raises(InferenceServerException) as raised:
        await asyncio.to_thread(read, url_of(v2), "get_inference_statistics", "no_such_model")
    assert raised.value.status() == "404"


@pytest.fixture(scope="session")
def perf_analyzer() -> list[str]:
    """Triton's perf_analyzer from its own cached virtualenv (bench/peers/venvs.py makes it once)."""
    make(ENVS["perf_analyzer"], ENVS["perf_analyzer"].folder.with_suffix(".log"))
    return perf_analyzer_command()


async def test_perf_analyzer_measures_a_throughput_against_the_gateway(
    v2: TestClient[Any, Any], perf_analyzer: list[str], tmp_path: Any
) -> None:
    report = tmp_path / "perf.csv"
    process = await asyncio.create_subprocess_exec(
        *perf_analyzer,
        "-m",
        "sk_iris",
        "-u",
        url_of(v2),
        "-i",
        "http",
        # A bounded count, one window: stabilising windows on a shared machine may never end.
        "--request-count",
        str(PERF_ANALYZER_REQUESTS),
        "-f",
        str(report),
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
    )
    output, _ = await asyncio.wait_for(process.communicate(), 120)
    text = output.decode(errors="replace")
    assert process.returncode == 0, text
    header, row = report.read_text().splitlines()[:2]
    figures = dict(zip(header.split(","), row.split(","), strict=True))
    assert float(figures["Inferences/Second"]) > 0, text
    assert int(figures["Concurrency"]) == 1
    # Every request it timed was served and counted by the modelhost (a few more warm it up).
    served = (await iris_stats(v2))["inference_stats"]["success"]["count"]
    assert served >= PERF_ANALYZER_REQUESTS
