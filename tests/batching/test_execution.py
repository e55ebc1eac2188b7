"""Execution settings and the inline-run estimate, on real onnxruntime sessions."""

from __future__ import annotations

import hashlib

import numpy as np

from actors.modelhost.runtime import ModelRuntime, RuntimeSettings
from mlbuffet.protocol.records import ModelSettings, VersionRecord
from mlbuffet.registry import ModelInspector


def test_defaults_fill_the_cores_without_oversubscribing_them():
    for cores, threads, sessions in ((2, 1, 2), (8, 2, 4), (1, 1, 1), (2, 4, 1)):
        chosen = RuntimeSettings.for_model(ModelSettings(), default_threads=threads, cores=cores)
        assert (chosen.intra_op_threads, chosen.sessions) == (threads, sessions)
    own = RuntimeSettings.for_model(
        ModelSettings(intra_op_threads=2, sessions=3), default_threads=1, cores=8
    )
    assert (own.intra_op_threads, own.sessions) == (2, 3)
    # The model's threads decide the default number of sessions.
    assert (
        RuntimeSettings.for_model(
            ModelSettings(intra_op_threads=4), default_threads=1, cores=8
        ).sessions
        == 2
    )


async def test_a_large_request_of_a_cheap_model_is_not_run_on_the_event_loop(model_files):
    inspector = ModelInspector()
    try:
        model = await inspector.inspect(model_files.matmul)
    finally:
        inspector.close()
    data = model_files.matmul.read_bytes()
    record = VersionRecord(
        version=1,
        sha256=hashlib.sha256(data).hexdigest(),
        size=len(data),
        uploaded_at="2026-01-01T00:00:00Z",
        description="",
        library="",
        filename="matmul.onnx",
        signature=model.signature,
    )
    runtime = ModelRuntime.load("matmul", record, data, RuntimeSettings(sessions=2))
    runtime.warm()
    assert len(runtime.sessions) == 2
    large = {"x": np.ones((1500, 256), np.float32)}
    assert not runtime.cheap(large)
    small = {"x": np.ones((1, 256), np.float32)}
    inline = runtime.try_timed_run(small, runtime.output_names)
    values, _, _ = runtime.timed_run(small, runtime.output_names)
    assert inline is not None and np.array_equal(inline[0][0], values[0])
