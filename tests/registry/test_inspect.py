"""ModelInspector: onnxruntime checks uploads in a worker process, and survives losing it."""

from __future__ import annotations

import asyncio
import os
import signal

import pytest

from mlbuffet.protocol.errors import UnprocessableError
from mlbuffet.protocol.records import DYNAMIC
from mlbuffet.registry import ModelInspector, sha256_of


def specs(side):
    return [(s.name, s.datatype, list(s.shape)) for s in side]


async def test_a_file_that_is_not_onnx_is_unprocessable(inspector, model_files, tmp_path):
    with pytest.raises(UnprocessableError, match="not an ONNX model") as raised:
        await inspector.inspect(model_files.not_onnx)
    assert raised.value.status == 422
    assert str(model_files.not_onnx) not in raised.value.message
    empty = tmp_path / "empty.onnx"
    empty.write_bytes(b"")
    with pytest.raises(UnprocessableError):
        await inspector.inspect(empty)


async def test_the_seed_iris_signature_has_a_dynamic_batch_and_a_zipmap_output(
    inspector, seed_iris
):
    model = await inspector.inspect(seed_iris)
    assert specs(model.signature.inputs) == [("float_input", "FP32", [DYNAMIC, 4])]
    label, probabilities = model.signature.outputs
    assert (label.name, label.datatype, list(label.shape)) == ("output_label", "INT64", [DYNAMIC])
    assert probabilities.datatype == "OBJECT"
    assert probabilities.onnx_type.startswith("seq(map(int64")
    assert model.library == "skl2onnx"
    assert (model.sha256, model.size) == sha256_of(seed_iris)


async def test_named_and_unnamed_dynamic_dimensions_read_as_minus_one(inspector, model_files):
    nhwc = await inspector.inspect(model_files.nhwc)
    assert specs(nhwc.signature.inputs) == [("image", "UINT8", [-1, -1, -1, 3])]
    nchw = await inspector.inspect(model_files.nchw)
    assert specs(nchw.signature.inputs) == [("image", "FP32", [-1, 3, 64, 64])]
    assert specs(nchw.signature.outputs) == [("means", "FP32", [-1, 3])]


async def test_every_datatype_is_read_from_the_signature(inspector, model_files):
    model = await inspector.inspect(model_files.all_types)
    assert [s.datatype for s in model.signature.inputs] == [
        "BOOL", "INT8", "INT16", "INT32", "INT64", "UINT8", "UINT16", "UINT32", "UINT64",
        "FP16", "FP32", "FP64", "BYTES",
    ]  # fmt: skip


async def test_the_models_own_description_is_read(inspector, model_files):
    model = await inspector.inspect(model_files.add_two)
    assert model.description == "adds 2.0 to every element"


def worker_pids(inspector: ModelInspector) -> set[int]:
    # The stdlib pool's own table of its worker processes.
    pool = inspector._pool
    return set(pool._processes) if pool is not None else set()


async def test_a_worker_killed_while_idle_does_not_fail_the_next_upload(inspector, model_files):
    await inspector.inspect(model_files.add_one)
    (pid,) = worker_pids(inspector)
    os.kill(pid, signal.SIGKILL)
    await asyncio.sleep(0.2)  # let the pool notice
    model = await inspector.inspect(model_files.add_two)
    assert model.description == "adds 2.0 to every element"
    assert pid not in worker_pids(inspector)


async def test_a_worker_killed_mid_inspection_is_replaced_and_the_file_checked_again(
    inspector, model_files
):
    await inspector.inspect(model_files.add_one)  # the worker is up
    (pid,) = worker_pids(inspector)
    inspecting = asyncio.create_task(inspector.inspect(model_files.slow_load))
    await asyncio.sleep(0.2)  # loading slow_load takes most of a second
    assert not inspecting.done()
    os.kill(pid, signal.SIGKILL)
    model = await inspecting
    assert specs(model.signature.inputs) == [("x", "FP32", [-1, 4])]
    assert pid not in worker_pids(inspector)
    assert (
        await inspector.inspect(model_files.add_ten)
    ).description == "adds 10.0 to every element"


async def test_the_inspector_can_be_closed_twice_and_used_again(model_files):
    inspector = ModelInspector()
    try:
        await inspector.inspect(model_files.add_one)
        inspector.close()
        inspector.close()
        assert (await inspector.inspect(model_files.add_two)).size > 0
    finally:
        inspector.close()


class FirstTryTooShort(ModelInspector):
    """Every first try outlasts its limit, as a wedged worker's would."""

    def first_try_timeout(self, size: int) -> float:
        return 0.0


def forkserver_pid() -> int | None:
    import multiprocessing.forkserver

    return multiprocessing.forkserver._forkserver._forkserver_pid


async def test_a_first_try_that_outlasts_its_limit_is_retried_in_a_fresh_worker_and_forkserver(
    inspector, model_files
):
    await inspector.inspect(model_files.add_one)  # a forkserver runs
    server_before = forkserver_pid()
    assert server_before is not None
    wedged = FirstTryTooShort()
    try:
        model = await wedged.inspect(model_files.add_two)
        assert model.description == "adds 2.0 to every element"
        assert forkserver_pid() not in (None, server_before)
    finally:
        wedged.close()
    # The other inspector's next worker forks from the new server too.
    assert (await inspector.inspect(model_files.add_ten)).size > 0
