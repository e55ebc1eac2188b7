"""Triton's own HTTP client against /v2, every answer compared with onnxruntime in-process.

tritonclient is synchronous (geventhttpclient): each scenario runs whole in one
worker thread, while the event loop keeps serving the gateway it talks to.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
import onnxruntime as ort
import pytest
import tritonclient.http as triton
from aiohttp.test_utils import TestClient
from tritonclient.utils import InferenceServerException, np_to_triton_dtype

Arrays = dict[str, npt.NDArray[Any]]
Mode = Callable[[int], bool]
MODES: dict[str, tuple[Mode, Mode]] = {
    "binary in, binary out": (lambda i: True, lambda i: True),
    "json in, json out": (lambda i: False, lambda i: False),
    "binary in, json out": (lambda i: True, lambda i: False),
    "json in, binary out": (lambda i: False, lambda i: True),
    "alternating": (lambda i: i % 2 == 0, lambda i: i % 2 == 1),
}
"""Whether input/output number i travels in binary."""


def url_of(client: TestClient[Any, Any]) -> str:
    assert client.server.port is not None
    return f"127.0.0.1:{client.server.port}"


def onnxruntime_answer(path: Path, feeds: Arrays) -> Arrays:
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    # onnxruntime takes string tensors as str; the HTTP client sends bytes.
    native = {
        name: np.vectorize(bytes.decode, otypes=[object])(a) if a.dtype == object else a
        for name, a in feeds.items()
    }
    names = [o.name for o in session.get_outputs()]
    return dict(zip(names, session.run(names, native), strict=True))


def as_comparable(array: Any) -> npt.NDArray[Any]:
    """String tensors as bytes elements, whichever side produced them."""
    array = np.asarray(array)
    if array.dtype == object or array.dtype.kind in "US":
        return np.vectorize(lambda v: v.encode() if isinstance(v, str) else v, otypes=[object])(
            array
        )
    return array


def assert_exactly_equal(got: Arrays, want: Arrays) -> None:
    assert sorted(got) == sorted(want)
    for name, expected in want.items():
        actual = got[name]
        assert actual.dtype == np.asarray(expected).dtype or expected.dtype == object, name
        assert np.array_equal(as_comparable(actual), as_comparable(expected)), (
            name,
            actual,
            expected,
        )


def triton_infer(
    url: str,
    model: str,
    feeds: Arrays,
    outputs: list[str],
    binary_in: Mode,
    binary_out: Mode,
    request_id: str = "",
    compression: str | None = None,
) -> tuple[Arrays, dict[str, Any]]:
    client = triton.InferenceServerClient(url)
    try:
        inputs = []
        for i, (name, array) in enumerate(feeds.items()):
            tensor = triton.InferInput(name, list(array.shape), np_to_triton_dtype(array.dtype))
            tensor.set_data_from_numpy(array, binary_data=binary_in(i))
            inputs.append(tensor)
        requested = [
            triton.InferRequestedOutput(name, binary_data=binary_out(i))
            for i, name in enumerate(outputs)
        ]
        result = client.infer(
            model,
            inputs,
            outputs=requested,
            request_id=request_id,
            request_compression_algorithm=compression,
            response_compression_algorithm=compression,
        )
        return {name: result.as_numpy(name) for name in outputs}, result.get_response()
    finally:
        client.close()


def all_types_feeds() -> Arrays:
    feeds: Arrays = {}
    for name, dtype in (
        ("INT8", np.int8),
        ("INT16", np.int16),
        ("INT32", np.int32),
        ("INT64", np.int64),
        ("UINT8", np.uint8),
        ("UINT16", np.uint16),
        ("UINT32", np.uint32),
        ("UINT64", np.uint64),
    ):
        info = np.iinfo(dtype)
        feeds[f"in_{name}"] = np.array([[info.min, info.max], [0, 1], [7, info.max - 1]], dtype)
    for name, dtype in (("FP16", np.float16), ("FP32", np.float32), ("FP64", np.float64)):
        info = np.finfo(dtype)
        feeds[f"in_{name}"] = np.array(
            [[info.min, info.max], [info.tiny, -0.0], [1 / 3, info.smallest_subnormal]], dtype
        )
    feeds["in_BOOL"] = np.array([[True, False], [False, False], [True, True]])
    feeds["in_BYTES"] = np.array(
        [[b"", b"plain"], ["caf\u00e9 \u2615".encode(), b"a\x00b"], [b"x" * 300, b"{}"]],
        dtype=object,
    )
    return feeds


def mixed_feeds() -> Arrays:
    return {
        "half": np.array([[0.5, -2.25, 30000], [1e-4, 3.0, -0.0]], np.float16),
        "small": np.array([[-128, 0, 127], [5, -6, 7]], np.int8),
        "flag": np.array([[True, False, True], [False, True, False]]),
        "text": np.array([b"first", "s\u00e9cond".encode()], dtype=object),
    }


def wide_feeds() -> Arrays:
    return {
        "counts": np.array([[0, 2**63 - 1], [12345678901234567, 3]], np.uint64),
        "reals": np.array([[1.5, 2.0], [1e-300, np.pi]], np.float64),
    }


CASES = {
    "all_types": all_types_feeds,
    "mixed": mixed_feeds,
    "wide": wide_feeds,
}


@pytest.mark.parametrize("model", sorted(CASES))
async def test_infer_equals_onnxruntime_in_every_encoding(
    v2: TestClient[Any, Any], model_paths: dict[str, Path], model: str
) -> None:
    feeds = CASES[model]()
    want = onnxruntime_answer(model_paths[model], feeds)
    outputs = list(want)

    def scenario() -> None:
        for mode, (binary_in, binary_out) in MODES.items():
            got, response = triton_infer(
                url_of(v2), model, feeds, outputs, binary_in, binary_out, request_id=mode
            )
            assert response["id"] == mode
            assert response["model_name"] == model
            assert response["model_version"] == "1"
            assert_exactly_equal(got, want)

    await asyncio.to_thread(scenario)


def test_every_datatype_is_covered() -> None:
    covered = {np_to_triton_dtype(a.dtype) for case in CASES.values() for a in case().values()}
    assert covered == {
        "BOOL",
        "INT8",
        "INT16",
        "INT32",
        "INT64",
        "UINT8",
        "UINT16",
        "UINT32",
        "UINT64",
        "FP16",
        "FP32",
        "FP64",
        "BYTES",
    }


async def test_a_subset_of_outputs(v2: TestClient[Any, Any], model_paths: dict[str, Path]) -> None:
    feeds = mixed_feeds()
    want = onnxruntime_answer(model_paths["mixed"], feeds)

    def scenario() -> None:
        got, response = triton_infer(
            url_of(v2), "mixed", feeds, ["text_twice", "picked"], lambda i: True, lambda i: i == 0
        )
        assert [o["name"] for o in response["outputs"]] == ["text_twice", "picked"]
        assert_exactly_equal(got, {n: want[n] for n in ("text_twice", "picked")})

    await asyncio.to_thread(scenario)


@pytest.mark.parametrize("compression", ["gzip", "deflate"])
async def test_compressed_requests(
    v2: TestClient[Any, Any], model_paths: dict[str, Path], compression: str
) -> None:
    feeds = wide_feeds()
    want = onnxruntime_answer(model_paths["wide"], feeds)

    def scenario() -> None:
        for binary in (True, False):
            got, _ = triton_infer(
                url_of(v2),
                "wide",
                feeds,
                list(want),
                lambda i, b=binary: b,
                lambda i, b=binary: b,
                compression=compression,
            )
            assert_exactly_equal(got, want)

    await asyncio.to_thread(scenario)


async def test_zipmap_output_is_json_text(
    v2: TestClient[Any, Any], model_paths: dict[str, Path]
) -> None:
    rows = np.array([[5.1, 3.5, 1.4, 0.2], [6.7, 3.0, 5.2, 2.3]], np.float32)
    session = ort.InferenceSession(str(model_paths["sk_iris"]), providers=["CPUExecutionProvider"])
    labels, probabilities = session.run(None, {"X": rows})
    outputs = ["output_label", "output_probability"]

    def scenario() -> None:
        for binary in (True, False):
            got, _ = triton_infer(
                url_of(v2),
                "sk_iris",
                {"X": rows},
                outputs,
                lambda i, b=binary: b,
                lambda i, b=binary: b,
            )
            assert np.array_equal(got["output_label"], labels)
            decoded = [json.loads(text) for text in got["output_probability"]]
            assert decoded == [{str(k): v for k, v in row.items()} for row in probabilities]

    await asyncio.to_thread(scenario)


async def test_server_and_model_metadata(v2: TestClient[Any, Any]) -> None:
    def scenario() -> None:
        client = triton.InferenceServerClient(url_of(v2))
        try:
            assert client.is_server_live()
            assert client.is_server_ready()
            server = client.get_server_metadata()
            assert server["name"] == "mlbuffet"
            assert {"binary_tensor_data", "model_repository"} <= set(server["extensions"])
            metadata = client.get_model_metadata("mixed")
            assert metadata["platform"] == "onnxruntime_onnx"
            assert metadata["versions"] == ["1"]
            assert metadata["inputs"] == [
                {"name": "half", "datatype": "FP16", "shape": [-1, 3]},
                {"name": "small", "datatype": "INT8", "shape": [-1, 3]},
                {"name": "flag", "datatype": "BOOL", "shape": [-1, 3]},
                {"name": "text", "datatype": "BYTES", "shape": [-1]},
            ]
            assert [o["name"] for o in metadata["outputs"]] == [
                "half_doubled",
                "small_tripled",
                "flag_negated",
                "picked",
                "text_twice",
            ]
            assert client.get_model_metadata("wide", "1")["name"] == "wide"
            assert client.is_model_ready("wide")
            assert client.is_model_ready("wide", "1")
            assert not client.is_model_ready("wide", "2")
            assert not client.is_model_ready("no_such_model")
            with pytest.raises(InferenceServerException) as raised:
                client.get_model_metadata("no_such_model")
            assert raised.value.status() == "404"
            assert "not found" in raised.value.message()
        finally:
            client.close()

    await asyncio.to_thread(scenario)


async def test_repository_unload_and_load(v2: TestClient[Any, Any]) -> None:
    feeds = {"a": np.ones((1, 2), np.float32), "b": np.full((1, 2), 2, np.float32)}

    def scenario() -> None:
        client = triton.InferenceServerClient(url_of(v2))
        try:
            index = client.get_model_repository_index()
            assert {e["name"] for e in index} == {
                "all_types",
                "mixed",
                "wide",
                "two_inputs",
                "sk_iris",
            }
            assert all(e["state"] == "READY" for e in index)
            client.unload_model("two_inputs")
            assert not client.is_model_ready("two_inputs")
            assert client.is_server_ready()  # an unloaded model is not expected to be served
            with pytest.raises(InferenceServerException) as raised:
                triton_infer(url_of(v2), "two_inputs", feeds, ["sum"], bool, bool)
            assert raised.value.status() == "503"
            assert "unloaded" in raised.value.message()
            states = {e["name"]: e["state"] for e in client.get_model_repository_index()}
            assert states["two_inputs"] == "UNAVAILABLE"
            client.load_model("two_inputs")
            assert client.is_model_ready("two_inputs")
            assert client.is_server_ready()
            got, _ = triton_infer(url_of(v2), "two_inputs", feeds, ["sum"], bool, bool)
            assert got["sum"].tolist() == [[3.0, 3.0]]
        finally:
            client.close()

    await asyncio.to_thread(scenario)
