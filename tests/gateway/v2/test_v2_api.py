"""/v2 over raw HTTP: the wire format itself, errors, limits, and the repository extension."""

from __future__ import annotations

import io
import json
import struct
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from aiohttp.test_utils import TestClient

from gateway.oip.framing import HEADER_LENGTH
from mlbuffet.protocol import subjects
from mlbuffet.protocol.events import ModelEvent
from mlbuffet.protocol.wire import unpack
from tests.conftest import eventually

TWO = {
    "inputs": [
        {"name": "a", "shape": [2, 2], "datatype": "FP32", "data": [1, 2, 3, 4]},
        {"name": "b", "shape": [2, 2], "datatype": "FP32", "data": [[10, 20], [30, 40]]},
    ]
}


async def infer(client: TestClient[Any, Any], model: str, body: Any, **kwargs: Any) -> Any:
    response = await client.post(f"/v2/models/{model}/infer", json=body, **kwargs)
    return response.status, await response.json()


def outputs_by_name(body: dict[str, Any]) -> dict[str, Any]:
    return {o["name"]: o for o in body["outputs"]}


async def test_nested_and_flat_data_mean_the_same_and_the_id_comes_back(v2):
    flat = {**TWO, "id": "request-7"}
    nested = {
        "inputs": [
            {**TWO["inputs"][0], "data": [[1, 2], [3, 4]]},
            {**TWO["inputs"][1], "data": [10, 20, 30, 40]},
        ]
    }
    status, first = await infer(v2, "two_inputs", flat)
    assert status == 200, first
    assert first["id"] == "request-7"
    assert first["model_name"] == "two_inputs"
    assert first["model_version"] == "1"
    status, second = await infer(v2, "two_inputs", nested)
    assert status == 200, second
    assert "id" not in second
    assert first["outputs"] == second["outputs"]
    assert outputs_by_name(first) == {
        "sum": {"name": "sum", "datatype": "FP32", "shape": [2, 2], "data": [11, 22, 33, 44]},
        "product": {
            "name": "product",
            "datatype": "FP32",
            "shape": [2, 2],
            "data": [10, 40, 90, 160],
        },
    }


async def test_requested_outputs_only_and_in_their_order(v2):
    status, body = await infer(v2, "two_inputs", {**TWO, "outputs": [{"name": "product"}]})
    assert status == 200, body
    assert [o["name"] for o in body["outputs"]] == ["product"]
    status, body = await infer(
        v2, "two_inputs", {**TWO, "outputs": [{"name": "product"}, {"name": "sum"}]}
    )
    assert [o["name"] for o in body["outputs"]] == ["product", "sum"]


async def test_a_pinned_version_answers_with_its_number(v2, upload, model_paths):
    await upload("two_inputs", model_paths["two_inputs"], make_default=False)
    for version in ("1", "2"):
        response = await v2.post(f"/v2/models/two_inputs/versions/{version}/infer", json=TWO)
        body = await response.json()
        assert response.status == 200, body
        assert body["model_version"] == version


def frame(document: dict[str, Any], *chunks: bytes) -> tuple[bytes, dict[str, str]]:
    header = json.dumps(document).encode()
    return header + b"".join(chunks), {HEADER_LENGTH: str(len(header))}


def split(body: bytes, header_length: str) -> tuple[dict[str, Any], bytes]:
    length = int(header_length)
    return json.loads(body[:length]), body[length:]


async def test_binary_inputs_and_outputs_on_the_wire(v2):
    a = np.array([[1, 2], [3, 4]], np.float32)
    text = ["\u00e9t\u00e9", ""]
    text_bytes = b"".join(struct.pack("<I", len(t.encode())) + t.encode() for t in text)
    half, small, flag = (
        np.ones((1, 3), np.float16),
        np.array([[1, 2, 3]], np.int8),
        np.ones((1, 3), bool),
    )
    body, headers = frame(
        {
            "inputs": [
                {
                    "name": "half",
                    "shape": [1, 3],
                    "datatype": "FP16",
                    "parameters": {"binary_data_size": 6},
                },
                {"name": "small", "shape": [1, 3], "datatype": "INT8", "data": [1, 2, 3]},
                {
                    "name": "flag",
                    "shape": [1, 3],
                    "datatype": "BOOL",
                    "parameters": {"binary_data_size": 3},
                },
                {
                    "name": "text",
                    "shape": [2],
                    "datatype": "BYTES",
                    "parameters": {"binary_data_size": len(text_bytes)},
                },
            ],
            "outputs": [
                {"name": "text_twice", "parameters": {"binary_data": True}},
                {"name": "small_tripled", "parameters": {"binary_data": False}},
                {"name": "flag_negated"},
            ],
            "parameters": {"binary_data_output": True},
        },
        half.tobytes(),
        flag.tobytes(),
        text_bytes,
    )
    del a, small
    response = await v2.post("/v2/models/mixed/infer", data=body, headers=headers)
    raw = await response.read()
    assert response.status == 200, raw
    assert response.content_type == "application/octet-stream"
    document, binary = split(raw, response.headers[HEADER_LENGTH])
    outputs = outputs_by_name(document)
    assert outputs["small_tripled"]["data"] == [3, 6, 9]
    assert outputs["text_twice"]["parameters"] == {"binary_data_size": 2 * len(text_bytes)}
    assert outputs["flag_negated"]["parameters"] == {"binary_data_size": 3}
    assert "data" not in outputs["text_twice"]
    # Binary outputs follow the header in the order of the outputs in it.
    assert binary == text_bytes * 2 + b"\x00\x00\x00"


async def test_json_output_of_non_finite_floats_is_null_binary_keeps_them(v2):
    half = {"name": "half", "shape": [1, 3], "datatype": "FP16", "data": [60000, 1, -60000]}
    others = [
        {"name": "small", "shape": [1, 3], "datatype": "INT8", "data": [0, 0, 0]},
        {"name": "flag", "shape": [1, 3], "datatype": "BOOL", "data": [False] * 3},
        {"name": "text", "shape": [0], "datatype": "BYTES", "data": []},
    ]
    request = {"inputs": [half, *others], "outputs": [{"name": "half_doubled"}]}
    status, body = await infer(v2, "mixed", request)
    assert status == 200, body
    assert body["outputs"][0]["data"] == [None, 2, None]
    request["parameters"] = {"binary_data_output": True}
    response = await v2.post("/v2/models/mixed/infer", json=request)
    _, binary = split(await response.read(), response.headers[HEADER_LENGTH])
    assert np.frombuffer(binary, np.float16).tolist() == [np.inf, 2, -np.inf]


async def test_zipmap_probabilities_are_bytes_of_json_text(v2):
    request = {"inputs": [{"name": "X", "shape": [1, 4], "datatype": "FP32", "data": [6, 3, 5, 2]}]}
    status, body = await infer(v2, "sk_iris", request)
    assert status == 200, body
    probabilities = outputs_by_name(body)["output_probability"]
    assert probabilities["datatype"] == "BYTES"
    assert probabilities["shape"] == [1]
    row = json.loads(probabilities["data"][0])
    assert sorted(row) == ["0", "1", "2"]
    assert sum(row.values()) == pytest.approx(1, abs=1e-5)


A, B = TWO["inputs"]


def only(name: str, datatype: str, value: Any) -> dict[str, Any]:
    """A request with one input of one element."""
    return {"inputs": [{"name": name, "shape": [1], "datatype": datatype, "data": [value]}]}


BAD_REQUESTS = [
    # (model, body, status, words in the error)
    ("two_inputs", b"{not json", 400, "not valid JSON"),
    ("two_inputs", b"[1, 2]", 400, "JSON object"),
    ("two_inputs", {"inputs": []}, 400, "non-empty list"),
    ("two_inputs", {"inputs": "x"}, 400, "non-empty list"),
    ("two_inputs", {"inputs": [{"name": "a"}]}, 400, "'datatype'"),
    ("two_inputs", {"inputs": [{**A, "datatype": "FP8"}]}, 400, "unknown datatype"),
    ("two_inputs", {"inputs": [{**A, "shape": [2, -2]}]}, 400, "shape"),
    ("two_inputs", {"inputs": [{**A, "data": [1, 2, 3]}]}, 400, "needs 4 elements"),
    ("two_inputs", {"inputs": [{**A, "data": [1, 2, 3, "x"]}]}, 400, "numbers"),
    ("two_inputs", {"inputs": [{**A, "data": [1, 2, 3, 1e39]}]}, 400, "range"),
    ("two_inputs", {"inputs": [{k: v for k, v in A.items() if k != "data"}]}, 400, "no 'data'"),
    ("two_inputs", {**TWO, "id": 5}, 400, "'id'"),
    ("two_inputs", {**TWO, "outputs": [{"name": "sum"}, {"name": "sum"}]}, 400, "twice"),
    ("two_inputs", {**TWO, "outputs": [{"nom": "sum"}]}, 400, "'name'"),
    ("two_inputs", {**TWO, "outputs": [{"name": "nope"}]}, 422, "nope"),
    ("two_inputs", {**TWO, "parameters": {"binary_data_output": "yes"}}, 400, "true or false"),
    ("two_inputs", {"inputs": [{**A, "datatype": "INT32"}, B]}, 422, "expects FP32"),
    ("two_inputs", {"inputs": [{**A, "shape": [4], "data": [1, 2, 3, 4]}, B]}, 422, "shape"),
    ("two_inputs", {"inputs": [A]}, 422, "missing input"),
    ("two_inputs", {"inputs": [{**A, "parameters": {"binary_data_size": 16}}]}, 400, "either"),
    ("all_types", only("in_INT8", "INT8", 128), 400, "-128..127"),
    ("all_types", only("in_INT8", "INT8", 1.5), 400, "whole numbers"),
    ("all_types", only("in_BOOL", "BOOL", 1), 400, "true or false"),
    ("all_types", only("in_BYTES", "BYTES", 1), 400, "strings"),
    ("no_such_model", TWO, 404, "not found"),
    ("Bad.Name!", TWO, 400, "invalid model name"),
]


@pytest.mark.parametrize(("model", "body", "status", "words"), BAD_REQUESTS)
async def test_malformed_requests_get_a_status_and_an_error(v2, model, body, status, words):
    data = body if isinstance(body, bytes) else json.dumps(body).encode()
    response = await v2.post(f"/v2/models/{model}/infer", data=data)
    answer = await response.json()
    assert response.status == status, answer
    assert list(answer) == ["error"]
    assert words in answer["error"]


BAD_FRAMES = [
    # (header length, body, words)
    ("abc", b"{}", "Inference-Header-Content-Length"),
    ("99", b"{}", "Inference-Header-Content-Length"),
    ("0", b"{}", "no JSON inference header"),
]


@pytest.mark.parametrize(("length", "body", "words"), BAD_FRAMES)
async def test_malformed_binary_framing(v2, length, body, words):
    response = await v2.post(
        "/v2/models/two_inputs/infer", data=body, headers={HEADER_LENGTH: length}
    )
    assert response.status == 400
    assert words in (await response.json())["error"]


@pytest.mark.parametrize(
    ("sizes", "extra", "words"),
    [
        ((16, 20), b"", "runs past the end"),
        ((16, 16), b"more", "4 bytes of binary data follow"),
        ((12, 16), b"", "needs 16"),
    ],
)
async def test_binary_sizes_that_do_not_add_up(v2, sizes, extra, words):
    inputs = [
        {"name": n, "shape": [2, 2], "datatype": "FP32", "parameters": {"binary_data_size": s}}
        for n, s in zip("ab", sizes, strict=True)
    ]
    data = np.arange(8, dtype=np.float32).tobytes()[: sum(sizes)]
    body, headers = frame({"inputs": inputs}, data, extra)
    response = await v2.post("/v2/models/two_inputs/infer", data=body, headers=headers)
    assert response.status == 400
    assert words in (await response.json())["error"]


@pytest.mark.parametrize(
    ("method", "path", "status"),
    [
        ("GET", "/v2/nothing", 404),
        ("GET", "/v2/models/two_inputs/versions/x", 400),
        ("GET", "/v2/models/two_inputs/versions/9", 404),
        ("GET", "/v2/models/two_inputs/versions/9/ready", 404),
        ("GET", "/v2/models/no_such_model/ready", 404),
        ("GET", "/v2/models/two_inputs/infer", 405),
        ("POST", "/v2/models/two_inputs/versions/9/infer", 404),
        ("POST", "/v2/repository/models/no_such_model/load", 404),
        ("POST", "/v2/repository/models/no_such_model/unload", 404),
    ],
)
async def test_route_errors_are_oip_errors(v2, method, path, status):
    response = await v2.request(method, path, data=b"{}")
    body = await response.json()
    assert response.status == status, body
    assert list(body) == ["error"] and body["error"]


async def test_api_v1_keeps_its_envelope(v2):
    response = await v2.get("/api/v1/models/no_such_model")
    body = await response.json()
    assert response.status == 404
    assert body["http_status"]["code"] == 404


async def test_the_help_lists_the_v2_routes(v2):
    text = await (await v2.get("/help")).text()
    assert "/v2/models/{model}/infer" in text
    assert "/v2/repository/index" in text


async def test_a_body_over_the_request_limit_is_413(make_gateway, upload, serving, model_paths):
    await upload("two_inputs", model_paths["two_inputs"])
    gateway = await make_gateway(max_request_bytes=1024)
    big = {"name": "a", "shape": [200, 2], "datatype": "FP32", "data": [1.5] * 400}
    status, body = await infer(gateway, "two_inputs", {"inputs": [big, {**big, "name": "b"}]})
    assert status == 413, body
    assert list(body) == ["error"]


def binary_pair(rows: int) -> list[dict[str, Any]]:
    """Inputs a and b of two_inputs, [rows, 2] FP32 each, in the binary section."""
    size = {"binary_data_size": rows * 8}
    return [{"name": n, "shape": [rows, 2], "datatype": "FP32", "parameters": size} for n in "ab"]


async def test_a_tensor_over_the_nats_payload_limit_is_413(v2):
    rows = 600_000  # 2 x 4.8 MB of binary float32: over the test server's 8 MiB max_payload
    data = np.zeros((rows, 2), np.float32).tobytes()
    body, headers = frame({"inputs": binary_pair(rows)}, data, data)
    response = await v2.post("/v2/models/two_inputs/infer", data=io.BytesIO(body), headers=headers)
    answer = await response.json()
    assert response.status == 413, answer
    assert "NATS limit" in answer["error"]


async def test_a_large_binary_tensor_round_trips(v2):
    rows = 250_000  # 2 MB per input and per output, never as JSON lists
    a = np.random.default_rng(1).standard_normal((rows, 2)).astype(np.float32)
    b = np.full((rows, 2), 0.5, np.float32)
    body, headers = frame(
        {"inputs": binary_pair(rows), "parameters": {"binary_data_output": True}},
        a.tobytes(),
        b.tobytes(),
    )
    response = await v2.post("/v2/models/two_inputs/infer", data=io.BytesIO(body), headers=headers)
    assert response.status == 200
    document, binary = split(await response.read(), response.headers[HEADER_LENGTH])
    sizes = [o["parameters"]["binary_data_size"] for o in document["outputs"]]
    assert sizes == [rows * 8, rows * 8]
    got = dict(
        zip(
            [o["name"] for o in document["outputs"]],
            np.frombuffer(binary, np.float32).reshape(2, rows, 2),
            strict=True,
        )
    )
    assert np.array_equal(got["sum"], a + b)
    assert np.array_equal(got["product"], a * b)


async def test_health_and_model_readiness_without_a_modelhost(make_gateway, upload, model_paths):
    await upload("two_inputs", model_paths["two_inputs"])
    gateway = await make_gateway()
    live = await gateway.get("/v2/health/live")
    assert live.status == 200 and await live.json() == {"live": True}
    ready = await gateway.get("/v2/health/ready")
    body = await ready.json()
    assert ready.status == 503 and body["ready"] is False
    assert "two_inputs" in body["error"]
    model = await gateway.get("/v2/models/two_inputs/ready")
    body = await model.json()
    assert model.status == 503 and body["ready"] is False
    assert "no modelhost" in body["error"]
    index = await (await gateway.post("/v2/repository/index", json={})).json()
    assert index[0]["state"] == "UNAVAILABLE" and "no modelhost" in index[0]["reason"]
    assert await (await gateway.post("/v2/repository/index", json={"ready": True})).json() == []


async def ready_status(client: TestClient[Any, Any], model: str) -> int:
    return (await client.get(f"/v2/models/{model}/ready")).status


async def test_unload_and_load_survive_a_modelhost_restart(
    make_gateway, upload, start_modelhost, model_paths: dict[str, Path], registry, nc
):
    await upload("two_inputs", model_paths["two_inputs"])
    host = await start_modelhost()
    gateway = await make_gateway()
    assert await ready_status(gateway, "two_inputs") == 200
    events: list[ModelEvent] = []

    async def record_event(msg: Any) -> None:
        events.append(unpack(msg.data, ModelEvent.from_dict))

    await nc.subscribe(subjects.model_events("two_inputs"), cb=record_event)

    response = await gateway.post("/v2/repository/models/two_inputs/unload")
    assert response.status == 200, await response.text()
    assert "two_inputs" not in host.served
    await eventually(lambda: [e.event for e in events] == [ModelEvent.UNLOADED])
    assert events[0].node == host.node_id
    assert (await registry.get("two_inputs")).serving is False
    assert await ready_status(gateway, "two_inputs") == 503
    status, body = await infer(gateway, "two_inputs", TWO)
    assert status == 503 and "unloaded" in body["error"]
    old = await gateway.post(
        "/api/v1/models/two_inputs/prediction", json={"values": {"a": [1, 2], "b": [3, 4]}}
    )
    old_body = await old.json()
    assert old.status == 503 and "unloaded" in old_body["http_status"]["description"]
    index = await (await gateway.post("/v2/repository/index")).json()
    assert [e["state"] for e in index] == ["UNAVAILABLE"]
    assert "unloaded" in index[0]["reason"]

    # The flag is in the registry: a new modelhost does not serve the model either.
    await host.drain(5)
    fresh = await start_modelhost()
    assert "two_inputs" not in fresh.served
    assert await ready_status(gateway, "two_inputs") == 503

    response = await gateway.post("/v2/repository/models/two_inputs/load", json={})
    assert response.status == 200, await response.text()
    assert "two_inputs" in fresh.served
    await eventually(lambda: events[-1].event == ModelEvent.LOADED)
    assert events[-1].node == fresh.node_id
    assert await ready_status(gateway, "two_inputs") == 200
    status, body = await infer(gateway, "two_inputs", TWO)
    assert status == 200, body

    # A second load, and an unload of what is unloaded, change nothing and succeed.
    assert (await gateway.post("/v2/repository/models/two_inputs/load")).status == 200
    assert (await gateway.post("/v2/repository/models/two_inputs/unload")).status == 200
    assert (await gateway.post("/v2/repository/models/two_inputs/unload")).status == 200
    await eventually(lambda: "two_inputs" not in fresh.served)


async def test_a_load_no_modelhost_can_serve_is_503_and_stays_marked(
    make_gateway, upload, model_paths, registry
):
    await upload("two_inputs", model_paths["two_inputs"])
    await registry.set_serving("two_inputs", False)
    gateway = await make_gateway(request_timeout_s=1.0)
    response = await gateway.post("/v2/repository/models/two_inputs/load")
    body = await response.json()
    assert response.status == 503, body
    assert "no modelhost serves" in body["error"]
    assert (await registry.get("two_inputs")).serving is True
