"""Dynamic batching against a real mesh: stacked runs answer exactly what single runs do."""

from __future__ import annotations

import asyncio
import time

import numpy as np
import onnxruntime as ort
import pytest
from nats.errors import TimeoutError as NatsTimeoutError

from actors.modelhost.batching import split_outputs
from mlbuffet.protocol import subjects
from mlbuffet.protocol.errors import UnprocessableError
from mlbuffet.protocol.headers import Header
from mlbuffet.protocol.inference import ObjectOutput, Tensor
from mlbuffet.protocol.records import ModelSettings
from mlbuffet.protocol.wire import pack
from tests.actors.conftest import arrays, infer, request_for
from tests.batching.conftest import TABLE_ROWS
from tests.conftest import eventually

SLOW_GATHER = ModelSettings(max_batch_size=64, max_queue_delay_us=50_000)
"""Long enough a delay that requests sent together on a busy machine still meet."""


def in_process(path, feeds):
    """The reference: one plain onnxruntime run of one request, no batching.

    With one intra-op thread as the host runs it: a tree ensemble sums in
    another order on several threads, and the last bits of its floats differ.
    """
    options = ort.SessionOptions()
    options.intra_op_num_threads = 1
    session = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
    return session.run(None, feeds)


def batch_sizes_seen(host, model):
    stats = host.stats.versions[(model, 1)]
    bounds = stats.batch_size.bounds
    return {
        (bounds[i] if i < len(bounds) else float("inf"))
        for i, n in enumerate(stats.batch_size.counts)
        if n
    }


async def test_concurrent_requests_of_different_sizes_get_exactly_their_unbatched_answers(
    nc, registry, upload, start_modelhost, model_files
):
    await upload("adder", model_files.add_one)
    await registry.set_settings("adder", SLOW_GATHER)
    host = await start_modelhost()
    rng = np.random.default_rng(7)
    requests = [rng.standard_normal((rows, 4)).astype(np.float32) for rows in (1, 3, 2, 5, 1, 4)]

    responses = await asyncio.gather(*(infer(nc, "adder", {"x": x}) for x in requests))

    for x, response in zip(requests, responses, strict=True):
        (expected,) = in_process(model_files.add_one, {"x": x})
        got = arrays(response)["y"]
        assert got.shape == x.shape
        assert np.array_equal(got, expected)
    stats = host.stats.versions[("adder", 1)]
    assert stats.success == len(requests)
    assert stats.batch_size.count == len(requests)
    assert max(batch_sizes_seen(host, "adder")) > 1, "no request was batched"
    assert stats.batch_size.sum > sum(len(x) for x in requests), "batch sizes are rows per run"


async def test_sequence_outputs_are_split_per_request(
    nc, registry, upload, start_modelhost, seed_iris
):
    """The seed iris answers a ZipMap (a list of maps, one per row): each request gets its rows."""
    await upload("iris", seed_iris)
    await registry.set_settings("iris", SLOW_GATHER)
    host = await start_modelhost()
    rows = [
        np.array([[2, 5, 1, 4]] * n, dtype=np.float32) + np.float32(i)
        for i, n in enumerate((1, 2, 3))
    ]
    responses = await asyncio.gather(*(infer(nc, "iris", {"float_input": x}) for x in rows))
    for x, response in zip(rows, responses, strict=True):
        labels, probabilities = in_process(seed_iris, {"float_input": x})
        got = arrays(response)
        assert np.array_equal(got["output_label"], labels)
        assert got["output_probability"] == [
            {int(k): float(v) for k, v in p.items()} for p in probabilities
        ]
    assert max(batch_sizes_seen(host, "iris")) > 1


async def test_a_request_that_fails_inside_the_run_fails_alone(
    nc, registry, upload, start_modelhost, lookup_model
):
    await upload("lookup", lookup_model)
    await registry.set_settings("lookup", SLOW_GATHER)
    host = await start_modelhost()
    good = [np.array([1, 2], dtype=np.int64), np.array([0], dtype=np.int64), np.array([9, 3, 4])]
    bad = np.array([TABLE_ROWS + 5], dtype=np.int64)  # passes the signature, fails in onnxruntime

    results = await asyncio.gather(
        infer(nc, "lookup", {"i": good[0]}),
        infer(nc, "lookup", {"i": bad}),
        infer(nc, "lookup", {"i": good[1]}),
        infer(nc, "lookup", {"i": good[2]}),
        return_exceptions=True,
    )

    assert isinstance(results[1], UnprocessableError), results[1]
    assert "cannot run on this input" in results[1].message
    for i, response in zip(good, (results[0], results[2], results[3]), strict=True):
        (expected,) = in_process(lookup_model, {"i": i})
        assert np.array_equal(arrays(response)["y"], expected)
    stats = host.stats.versions[("lookup", 1)]
    assert (stats.success, stats.failure) == (3, 1)


async def test_a_malformed_request_fails_before_it_joins_a_batch(
    nc, registry, upload, start_modelhost, model_files
):
    await upload("adder", model_files.add_one)
    await registry.set_settings("adder", SLOW_GATHER)
    await start_modelhost()
    x = np.ones((2, 4), dtype=np.float32)
    results = await asyncio.gather(
        infer(nc, "adder", {"x": x}),
        infer(nc, "adder", {"x": np.ones((1, 3), dtype=np.float32)}),
        infer(nc, "adder", {"x": x}, outputs=("nope",)),
        infer(nc, "adder", {"x": x + 1}),
        return_exceptions=True,
    )
    assert isinstance(results[1], UnprocessableError) and "shape" in results[1].message
    assert isinstance(results[2], UnprocessableError) and "unknown output" in results[2].message
    assert np.array_equal(arrays(results[0])["y"], x + 1)
    assert np.array_equal(arrays(results[3])["y"], x + 2)


async def test_requests_asking_for_different_outputs_are_not_stacked_together(
    nc, registry, upload, start_modelhost, seed_iris
):
    await upload("iris", seed_iris)
    await registry.set_settings("iris", SLOW_GATHER)
    await start_modelhost()
    x = np.array([[2, 5, 1, 4]], dtype=np.float32)
    only_label, both = await asyncio.gather(
        infer(nc, "iris", {"float_input": x}, outputs=("output_label",)),
        infer(nc, "iris", {"float_input": x}),
    )
    assert [o.name for o in only_label.outputs] == ["output_label"]
    assert [o.name for o in both.outputs] == ["output_label", "output_probability"]


async def test_preferred_batch_size_sends_a_batch_without_waiting_out_the_delay(
    nc, registry, upload, start_modelhost, model_files
):
    await upload("adder", model_files.add_one)
    await registry.set_settings(
        "adder",
        ModelSettings(max_batch_size=64, max_queue_delay_us=1_000_000, preferred_batch_sizes=(4,)),
    )
    await start_modelhost()
    began = time.perf_counter()
    responses = await asyncio.gather(
        *(infer(nc, "adder", {"x": np.full((2, 4), i, np.float32)}) for i in range(2))
    )
    assert time.perf_counter() - began < 0.9, "the batch waited for the full second"
    for i, response in enumerate(responses):
        assert np.array_equal(arrays(response)["y"], np.full((2, 4), i + 1, np.float32))


async def test_a_request_whose_deadline_passes_in_the_queue_is_dropped(
    nc, registry, upload, start_modelhost, model_files
):
    await upload("adder", model_files.add_one)
    await registry.set_settings(
        "adder", ModelSettings(max_batch_size=8, max_queue_delay_us=800_000)
    )
    host = await start_modelhost()
    deadline = str(int((time.time() + 0.2) * 1000))
    payload = pack(request_for("adder", {"x": np.ones((1, 4), np.float32)}))
    with pytest.raises(NatsTimeoutError):
        await nc.request(
            subjects.infer("adder"), payload, timeout=1.5, headers={Header.DEADLINE.value: deadline}
        )
    assert host.stats.expired == 1
    assert host.stats.in_flight == 0


async def test_fixed_first_dimension_refuses_batching_settings(registry, upload, model_files):
    await upload("squeezenet", model_files.squeezenet)
    with pytest.raises(UnprocessableError, match="dynamic first dimension"):
        await registry.set_settings("squeezenet", ModelSettings(max_batch_size=8))
    # Execution settings alone are fine for any model.
    record = await registry.set_settings(
        "squeezenet", ModelSettings(sessions=2, intra_op_threads=1)
    )
    assert record.settings.sessions == 2


async def test_execution_settings_choose_sessions_and_threads(
    nc, registry, upload, start_modelhost, model_files
):
    await upload("adder", model_files.add_one)
    await registry.set_settings("adder", ModelSettings(sessions=3, intra_op_threads=1))
    host = await start_modelhost()
    runtime = host.served["adder"].default
    assert len(runtime.sessions) == 3
    responses = await asyncio.gather(
        *(infer(nc, "adder", {"x": np.full((1, 4), i, np.float32)}) for i in range(12))
    )
    for i, response in enumerate(responses):
        assert np.array_equal(arrays(response)["y"], np.full((1, 4), i + 1, np.float32))


async def test_a_settings_change_reaches_a_running_host(
    nc, registry, upload, start_modelhost, model_files
):
    await upload("adder", model_files.add_one)
    host = await start_modelhost()
    assert host.served["adder"].default.settings == ModelSettings()
    await registry.set_settings("adder", SLOW_GATHER)
    await eventually(lambda: host.served["adder"].default.settings == SLOW_GATHER)
    responses = await asyncio.gather(
        *(infer(nc, "adder", {"x": np.full((1, 4), i, np.float32)}) for i in range(4))
    )
    assert [float(arrays(r)["y"][0, 0]) for r in responses] == [1.0, 2.0, 3.0, 4.0]
    assert max(batch_sizes_seen(host, "adder")) > 1


def test_split_outputs_refuses_outputs_without_a_row_per_request():
    values = [np.arange(6).reshape(3, 2), [{"a": 1}, {"a": 2}, {"a": 3}]]
    shares = split_outputs(["t", "o"], values, [1, 2])
    assert shares is not None
    first, second = shares
    assert isinstance(first[0], Tensor) and first[0].shape == (1, 2)
    assert isinstance(second[1], ObjectOutput) and second[1].value == [{"a": 2}, {"a": 3}]
    assert split_outputs(["t"], [np.arange(4)], [1, 2]) is None
    assert split_outputs(["t"], [np.float32(1)], [1]) is None
