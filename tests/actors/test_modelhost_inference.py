"""One modelhost answering inference: real models, real onnxruntime, checked inputs, clear errors."""

from __future__ import annotations

import msgpack
import numpy as np
import pytest

from mlbuffet.protocol import subjects
from mlbuffet.protocol.errors import (
    BadRequestError,
    ModelNotFoundError,
    PayloadTooLargeError,
    UnprocessableError,
)
from mlbuffet.protocol.inference import (
    EchoReply,
    EchoRequest,
    InferRequest,
    InferResponse,
    ObjectOutput,
    Tensor,
)
from mlbuffet.protocol.wire import pack, unpack
from tests import onnx_models
from tests.actors.conftest import added, adder_input, arrays, infer, request_for


@pytest.fixture
async def iris_host(upload, start_modelhost, seed_iris):
    await upload("iris", seed_iris)
    return await start_modelhost()


@pytest.mark.parametrize(
    ("features", "label"), [([2, 5, 1, 4], 1), ([5.1, 3.5, 1.4, 0.2], 0)], ids=str
)
async def test_the_seed_iris_model_answers_the_original_readmes_labels(
    nc, iris_host, features, label
):
    response = await infer(nc, "iris", {"float_input": np.array([features], dtype=np.float32)})
    assert (response.model, response.version, response.node) == ("iris", 1, iris_host.node_id)
    outputs = arrays(response)
    assert outputs["output_label"].tolist() == [label]
    (probabilities,) = outputs["output_probability"]
    assert type(probabilities) is dict
    assert set(probabilities) == {0, 1, 2}
    assert max(probabilities, key=probabilities.get) == label
    assert sum(probabilities.values()) == pytest.approx(1.0, abs=1e-5)


async def test_a_batch_gets_one_answer_per_row(nc, iris_host):
    rows = np.array([[2, 5, 1, 4], [5.1, 3.5, 1.4, 0.2], [2, 5, 1, 4]], dtype=np.float32)
    response = await infer(nc, "iris", {"float_input": rows})
    outputs = arrays(response)
    assert outputs["output_label"].tolist() == [1, 0, 1]
    assert len(outputs["output_probability"]) == 3
    assert isinstance(response.outputs[1], ObjectOutput)


async def test_only_the_requested_outputs_come_back_in_the_order_asked(nc, iris_host):
    features = {"float_input": np.array([[2, 5, 1, 4]], dtype=np.float32)}
    response = await infer(nc, "iris", features, outputs=("output_label",))
    assert [o.name for o in response.outputs] == ["output_label"]
    response = await infer(nc, "iris", features, outputs=("output_probability", "output_label"))
    assert [o.name for o in response.outputs] == ["output_probability", "output_label"]


async def test_the_request_id_comes_back_with_the_answer(nc, iris_host):
    request = InferRequest(
        model="iris",
        inputs=request_for("iris", {"float_input": np.zeros((1, 4), np.float32)}).inputs,
        id="trace-42",
    )
    msg = await nc.request(subjects.infer("iris"), pack(request), timeout=5)
    assert unpack(msg.data, InferResponse.from_dict).id == "trace-42"


async def test_a_scikit_learn_model_converted_today_answers_too(
    nc, upload, start_modelhost, model_files
):
    await upload("sk", model_files.sk_iris)
    await start_modelhost()
    response = await infer(nc, "sk", {"X": np.array([[5.1, 3.5, 1.4, 0.2]], dtype=np.float32)})
    assert arrays(response)["output_label"].tolist() == [0]


# -- inputs that do not fit the model: 422 with what was expected ---------------------


@pytest.fixture
async def nchw_host(upload, start_modelhost, model_files):
    await upload("means", model_files.nchw)
    await upload("pair", model_files.two_inputs)
    return await start_modelhost()


IMAGE = np.ones((1, 3, 64, 64), dtype=np.float32)


@pytest.mark.parametrize(
    ("model", "inputs", "outputs", "expected"),
    [
        ("means", {"picture": IMAGE}, None, "unknown input 'picture'; means:1 takes image FP32 [-1, 3, 64, 64]"),
        ("pair", {"a": np.ones((1, 2), np.float32)}, None, "missing input b FP32 [-1, 2]"),
        ("means", {"image": IMAGE.astype(np.float64)}, None, "input 'image' is FP64; the model expects FP32"),
        ("means", {"image": IMAGE[0]}, None, "has shape [3, 64, 64]; the model expects [-1, 3, 64, 64]"),
        ("means", {"image": np.ones((1, 3, 32, 32), np.float32)}, None, "has shape [1, 3, 32, 32]; the model expects [-1, 3, 64, 64]"),
        ("means", {"image": np.ones((1, 4, 64, 64), np.float32)}, None, "the model expects [-1, 3, 64, 64]"),
        ("means", {"image": IMAGE}, ("medians",), "unknown output 'medians'; the model gives means"),
    ],
    ids=["unknown input", "missing input", "datatype", "rank", "fixed dim", "channels", "unknown output"],
)  # fmt: skip
async def test_an_input_that_does_not_fit_is_unprocessable_and_says_what_was_expected(
    nc, nchw_host, model, inputs, outputs, expected
):
    with pytest.raises(UnprocessableError) as raised:
        await infer(nc, model, inputs, outputs=outputs)
    assert expected in raised.value.message
    assert raised.value.status == 422


async def test_an_input_given_twice_is_unprocessable(nc, nchw_host):
    tensor = request_for("means", {"image": IMAGE}).inputs[0]
    request = InferRequest(model="means", inputs=(tensor, tensor))
    msg = await nc.request(subjects.infer("means"), pack(request), timeout=5)
    with pytest.raises(UnprocessableError, match="given twice"):
        unpack(msg.data, InferResponse.from_dict)


async def test_strings_that_are_not_utf8_are_unprocessable(
    nc, upload, start_modelhost, model_files
):
    await upload("types", model_files.all_types)
    await start_modelhost()
    inputs = {f"in_{t}": np.zeros((1, 2), dtype=d) for t, d in DTYPE_SAMPLES.items()}
    inputs["in_BYTES"] = np.array([[b"ok", b"\xff\xfe"]], dtype=object)
    with pytest.raises(UnprocessableError, match="UTF-8"):
        await infer(nc, "types", inputs)


# -- malformed requests: 400, and the host keeps serving ------------------------------


@pytest.mark.parametrize(
    "payload",
    [
        b"\xc1 not msgpack",
        b"",
        msgpack.packb([1, 2, 3]),
        pack(EchoRequest(data="hello")),
        msgpack.packb({"model": "iris", "inputs": [{"name": "float_input"}]}),
        msgpack.packb({"model": "iris", "inputs": "float_input"}),
        pack(InferRequest("iris", (Tensor("float_input", "FP32", (1, 4), b"\x00" * 15),))),
        pack(InferRequest("iris", (Tensor("float_input", "FP32", (2**40, 4), b"\x00" * 16),))),
    ],
    ids=[
        "not msgpack",
        "empty",
        "array",
        "echo request",
        "tensor without fields",
        "inputs not a list",
        "short data",
        "huge shape",
    ],
)
async def test_a_malformed_request_is_a_bad_request_and_the_host_keeps_serving(
    nc, iris_host, payload
):
    msg = await nc.request(subjects.infer("iris"), payload, timeout=5)
    with pytest.raises(BadRequestError) as raised:
        unpack(msg.data, InferResponse.from_dict)
    assert raised.value.status == 400
    response = await infer(nc, "iris", {"float_input": np.array([[2, 5, 1, 4]], np.float32)})
    assert arrays(response)["output_label"].tolist() == [1]


async def test_an_error_field_inside_a_request_is_not_taken_for_an_error_reply(nc, iris_host):
    raw = request_for("iris", {"float_input": np.array([[2, 5, 1, 4]], np.float32)}).to_dict()
    raw["error"] = {"code": 200, "message": "not an error"}
    msg = await nc.request(subjects.infer("iris"), msgpack.packb(raw), timeout=5)
    response = unpack(msg.data, InferResponse.from_dict)
    assert arrays(response)["output_label"].tolist() == [1]


async def test_a_malformed_echo_is_a_bad_request_and_echo_keeps_answering(nc, iris_host):
    msg = await nc.request(subjects.echo(), b"\x93\x01\x02\x03", timeout=5)
    with pytest.raises(BadRequestError):
        unpack(msg.data, EchoReply.from_dict)
    msg = await nc.request(subjects.echo(), pack(EchoRequest(data=[1, "two"])), timeout=5)
    assert unpack(msg.data, EchoReply.from_dict) == EchoReply(
        data=[1, "two"], node=iris_host.node_id
    )


async def test_an_unparsable_pinned_subject_is_a_bad_request(nc, iris_host):
    payload = pack(request_for("iris", {"float_input": np.zeros((1, 4), np.float32)}))
    for subject in ("mlbuffet.infer.iris.latest", "mlbuffet.infer.iris.0"):
        msg = await nc.request(subject, payload, timeout=5)
        with pytest.raises(BadRequestError, match="not a version number"):
            unpack(msg.data, InferResponse.from_dict)


async def test_an_unknown_pinned_version_is_not_found(nc, iris_host):
    with pytest.raises(ModelNotFoundError, match="no version 9"):
        await infer(nc, "iris", {"float_input": np.zeros((1, 4), np.float32)}, version=9)


# -- every datatype end to end ------------------------------------------------------------

DTYPE_SAMPLES = {
    "BOOL": np.bool_,
    "INT8": np.int8,
    "INT16": np.int16,
    "INT32": np.int32,
    "INT64": np.int64,
    "UINT8": np.uint8,
    "UINT16": np.uint16,
    "UINT32": np.uint32,
    "UINT64": np.uint64,
    "FP16": np.float16,
    "FP32": np.float32,
    "FP64": np.float64,
}


def extremes(dtype: type) -> np.ndarray:
    if dtype is np.bool_:
        values = [[True, False], [False, True]]
    elif np.issubdtype(dtype, np.floating):
        info = np.finfo(dtype)
        values = [[info.max, info.min], [-0.5, info.tiny]]
    else:
        info = np.iinfo(dtype)
        values = [[info.max, info.min], [0, 1]]
    return np.array(values, dtype=dtype)


async def test_every_datatype_passes_through_the_identity_model_unchanged(
    nc, upload, start_modelhost, model_files
):
    assert set(onnx_models.IDENTITY_TYPES) == {*DTYPE_SAMPLES, "BYTES"}
    await upload("types", model_files.all_types)
    await start_modelhost()
    inputs = {f"in_{t}": extremes(d) for t, d in DTYPE_SAMPLES.items()}
    inputs["in_BYTES"] = np.array([["", "Ελληνικά"], ["日本語 🐍", "plain"]], dtype=object)
    response = await infer(nc, "types", inputs)
    outputs = arrays(response)
    for datatype, dtype in DTYPE_SAMPLES.items():
        out = outputs[f"out_{datatype}"]
        assert out.dtype == np.dtype(dtype), datatype
        assert out.tobytes() == inputs[f"in_{datatype}"].tobytes(), datatype
    assert outputs["out_BYTES"].tolist() == [
        [b"", "Ελληνικά".encode()],
        ["日本語 🐍".encode(), b"plain"],
    ]
    assert {o.name: o.datatype for o in response.outputs if isinstance(o, Tensor)} == {
        f"out_{t}": t for t in onnx_models.IDENTITY_TYPES
    }


async def test_an_empty_batch_gets_an_empty_answer(nc, upload, start_modelhost, model_files):
    await upload("adder", model_files.add_one)
    await start_modelhost()
    response = await infer(nc, "adder", {"x": np.zeros((0, 4), np.float32)})
    assert arrays(response)["y"].shape == (0, 4)


async def test_an_answer_over_the_nats_payload_limit_is_413_not_a_hang(
    nc, upload, start_modelhost, model_files
):
    await upload("tile", model_files.tile)
    await start_modelhost()
    with pytest.raises(PayloadTooLargeError, match="over the NATS limit") as raised:
        await infer(nc, "tile", {"x": np.ones((1, 1024), np.float32)})
    assert raised.value.status == 413
    # Smaller answers still fit: the host is fine.
    response = await infer(nc, "tile", {"x": np.ones((0, 1024), np.float32)})
    assert arrays(response)["y"].shape == (0, 1024)


async def test_the_add_models_tell_which_version_answered(nc, upload, start_modelhost, model_files):
    await upload("adder", model_files.add_two)
    await start_modelhost()
    assert added(await infer(nc, "adder", adder_input(3))) == 2.0


async def test_the_host_counts_each_request_once_by_model_version(nc, iris_host):
    rows = np.array([[2, 5, 1, 4]], dtype=np.float32)
    for _ in range(3):
        await infer(nc, "iris", {"float_input": rows})
    with pytest.raises(UnprocessableError):
        await infer(nc, "iris", {"float_input": np.zeros((1, 3), dtype=np.float32)})
    stats = iris_host.stats.versions[("iris", 1)]
    assert (stats.success, stats.failure) == (3, 1)
    assert stats.latency.count == 4
    assert (stats.compute.count, stats.queue.count, stats.batch_size.count) == (3, 3, 3)
    assert sum(stats.latency.counts) == 4
    assert 0 < stats.compute.sum <= stats.latency.sum
    assert iris_host.stats.in_flight == 0


async def test_a_probe_names_the_ready_version_and_runs_nothing(nc, iris_host):
    from mlbuffet.protocol.headers import Header

    msg = await nc.request(
        subjects.infer("iris"), b"", timeout=5, headers={Header.PROBE.value: "1"}
    )
    response = unpack(msg.data, InferResponse.from_dict)
    assert (response.model, response.version, response.node, response.outputs) == (
        "iris",
        1,
        iris_host.node_id,
        (),
    )
    assert ("iris", 1) not in iris_host.stats.versions
    missing = await nc.request(
        subjects.infer("iris", 7), b"", timeout=5, headers={Header.PROBE.value: "1"}
    )
    with pytest.raises(ModelNotFoundError):
        unpack(missing.data, InferResponse.from_dict)
