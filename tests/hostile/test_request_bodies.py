"""Malformed bodies x every gateway route that reads a body: each a clear 4xx, nothing lost.

Real gateway on a real socket, real NATS registry, a real modelhost running
the seed's iris.onnx in onnxruntime. After each route's cases its good request
still works, and the registry holds what it held (refusals change nothing).
"""

from __future__ import annotations

import io
import json
import math
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import numpy as np
import orjson
import pytest
from aiohttp.test_utils import TestClient
from nats.aio.client import Client

from tests.hostile import body_cases as cases
from tests.hostile import hostile_files as files
from tests.hostile.fuzz_cases import drawn
from tests.hostile.test_upload_zoo import snapshot
from tests.onnx_models import IDENTITY_TYPES, ModelFiles

Gateway = TestClient[Any, Any]


@pytest.fixture
async def client(
    make_gateway: Callable[..., Awaitable[Gateway]], serving: Any, upload: Any, seed_iris: Path
) -> Gateway:
    await upload("iris", seed_iris)
    gateway = await make_gateway(no_responders_wait_s=10)
    response = await gateway.post("/api/v1/models/iris/prediction", data=cases.IRIS_ROW)
    assert response.status in (200, 422), await response.text()  # 422: the row, not JSON
    return gateway


async def send(
    client: Gateway, method: str, path: str, body: bytes, headers: dict[str, str]
) -> tuple[int, str]:
    response = await client.request(method, path, data=io.BytesIO(body), headers=headers)
    return response.status, await response.text()


async def good_request_works(client: Gateway, route: cases.JsonRoute) -> None:
    body, headers = route.request(route.good)
    status, text = await send(client, route.method, route.path, body, headers)
    assert status == 200, f"{route.label}, good request: {status} {text[:300]}"


async def test_every_json_route_refuses_what_is_not_strict_json_with_a_400(
    client: Gateway, nc: Client
) -> None:
    wrong = []
    for route in cases.json_routes():
        await good_request_works(client, route)
        if route.label != "description":  # the good description is a write: snapshot after
            before = await snapshot(nc)
        for label, body, words in cases.WHOLE_BODIES:
            headers = route.request(b"")[1]
            if route.binary_tail is not None:
                body += route.binary_tail
                headers["Inference-Header-Content-Length"] = str(len(body) - 16)
            status, text = await send(client, route.method, route.path, body, headers)
            if status != 400 or not all(w in text for w in words):
                wrong.append(f"{route.label} / {label}: {status} {text[:200]}")
        for case in cases.value_cases():
            if case.parses:
                continue
            status, text = await send(client, route.method, route.path, *route.request(case.value))
            if status != 400 or not all(w in text for w in ("not valid JSON", *case.words)):
                wrong.append(f"{route.label} / {case.label}: {status} {text[:200]}")
        if route.label != "description":
            assert await snapshot(nc) == before, f"{route.label}: a refusal changed the registry"
        await good_request_works(client, route)
    assert not wrong, "\n".join(wrong)


async def test_every_json_route_answers_json_that_does_not_fit_with_its_4xx(
    client: Gateway,
) -> None:
    wrong = []
    for route in cases.json_routes():
        for case in cases.value_cases():
            if not case.parses:
                continue
            expected = 200 if case.label in route.takes_any else route.misfit
            status, text = await send(client, route.method, route.path, *route.request(case.value))
            message = text if status == 200 else _error_message(text)
            if status != expected or not message:
                wrong.append(
                    f"{route.label} / {case.label}: {status} (want {expected}) {text[:200]}"
                )
        await good_request_works(client, route)
    assert not wrong, "\n".join(wrong)


def _error_message(text: str) -> str:
    """The message of an error answer, in either envelope (/api: http_status, /v2: error)."""
    try:
        body = orjson.loads(text)
    except orjson.JSONDecodeError:
        return ""
    if "error" in body:
        return str(body["error"])
    return str(body.get("http_status", {}).get("description", ""))


async def test_the_v2_header_length_must_be_a_decimal_length_within_the_body(
    client: Gateway,
) -> None:
    route = next(r for r in cases.json_routes() if r.label == "v2 infer binary")
    body, headers = route.request(route.good)
    length = headers["Inference-Header-Content-Length"]
    for bad in ("-1", "abc", f"+{length}", f"{length[:-1]}_{length[-1]}", "1e2",
                "\u0661\u0662", str(len(body) + 1), "99999999999999999999999", "", "0"):  # fmt: skip
        status, text = await send(
            client, "POST", route.path, body, {**headers, "Inference-Header-Content-Length": bad}
        )
        assert status == 400, f"{bad!r}: {status} {text[:200]}"
        assert "Inference-Header-Content-Length" in text or "inference" in text, text
    await good_request_works(client, route)


async def test_null_is_a_missing_value_in_float_inputs_and_refused_in_others(
    make_gateway: Callable[..., Awaitable[Gateway]],
    serving: Any,
    upload: Any,
    model_files: ModelFiles,
) -> None:
    """null reaches the model as NaN (an Identity model gives it back, rendered null again)."""
    await upload("types", model_files.all_types)
    client = await make_gateway(no_responders_wait_s=10)
    for datatype in ("FP16", "FP32", "FP64"):
        body = {"values": {f"in_{t}": _two(t) for t in _types()}}
        body["values"][f"in_{datatype}"] = [[None, 1.5]]
        response = await client.post("/api/v1/models/types/prediction", json=body)
        answer = await response.json()
        assert response.status == 200, answer
        assert answer["outputs"][f"out_{datatype}"] == [[None, 1.5]], answer

        oip = {"inputs": [_oip(t, None if t == datatype else ...) for t in _types()]}
        response = await client.post("/v2/models/types/infer", json=oip)
        answer = await response.json()
        assert response.status == 200, answer
        out = next(o for o in answer["outputs"] if o["name"] == f"out_{datatype}")
        assert out["data"] == [None, 1.5], out

        binary = {
            **oip,
            "outputs": [{"name": f"out_{datatype}", "parameters": {"binary_data": True}}],
        }
        response = await client.post("/v2/models/types/infer", json=binary)
        raw = await response.read()
        assert response.status == 200, raw[:300]
        header = int(response.headers["Inference-Header-Content-Length"])
        dtype = {"FP16": "<f2", "FP32": "<f4", "FP64": "<f8"}[datatype]
        values = np.frombuffer(raw[header:], dtype=dtype)
        assert math.isnan(values[0]) and values[1] == 1.5, values
    for datatype in ("INT32", "INT64", "UINT8", "BOOL", "BYTES"):
        body = {"values": {f"in_{t}": _two(t) for t in _types()}}
        body["values"][f"in_{datatype}"] = [[None, _two(datatype)[0][1]]]
        response = await client.post("/api/v1/models/types/prediction", json=body)
        text = await response.text()
        assert response.status == 422, f"{datatype}: {text}"
        assert "null" in text if datatype != "BYTES" else "strings" in text, text
        oip = {"inputs": [_oip(t, None if t == datatype else ...) for t in _types()]}
        response = await client.post("/v2/models/types/infer", json=oip)
        text = await response.text()
        assert response.status == 400, f"{datatype}: {text}"


def _types() -> tuple[str, ...]:
    return tuple(IDENTITY_TYPES)


def _two(datatype: str) -> list[list[Any]]:
    if datatype == "BOOL":
        return [[True, False]]
    if datatype == "BYTES":
        return [["a", "b"]]
    if datatype.startswith("FP"):
        return [[0.5, 1.5]]
    return [[1, 2]]


def _oip(datatype: str, first: Any) -> dict[str, Any]:
    data = _two(datatype)[0]
    if first is not ...:
        data = [first, data[1]]
    return {"name": f"in_{datatype}", "datatype": datatype, "shape": [1, 2], "data": data}


FORM_ROUTES = [
    ("PUT upload", "PUT", "/api/v1/models/hostile"),
    ("POST upload", "POST", "/api/v1/models/hostile"),
    ("POST image prediction", "POST", "/api/v1/models/iris/prediction"),
    ("GET image prediction", "GET", "/api/v1/models/iris/prediction"),
    ("train", "POST", "/api/v1/train/hostile"),
    ("train with output file", "POST", "/api/v1/train/hostile/iris.onnx"),
]
MISSING_PART = 422
"""Every form route's status for a well-formed form without the file it needs."""


async def test_every_form_route_refuses_malformed_forms_with_a_4xx(
    client: Gateway, nc: Client
) -> None:
    before = await snapshot(nc)
    wrong = []
    for route, method, path in FORM_ROUTES:
        for label, body, content_type in cases.MALFORMED_FORMS:
            status, text = await send(client, method, path, body, {"Content-Type": content_type})
            message = _error_message(text)
            expected = MISSING_PART if label == "no file part" else 400
            if status != expected or not message:
                wrong.append(f"{route} / {label}: {status} (want {expected}) {text[:200]}")
    assert not wrong, "\n".join(wrong)
    assert await snapshot(nc) == before


SETTING_VALUES = ["nan", "inf", "-inf", "1e400", "1.5", "-1", "99999999999999999999", "0x10",
                  "1 2", "\x00"]  # fmt: skip
TIMEOUT_VALUES = ["nan", "inf", "-inf", "1e400", "0", "-1", "-0", "ten", "\x00"]


async def test_form_fields_that_are_not_valid_settings_or_timeouts_are_refused(
    client: Gateway, nc: Client, model_files: ModelFiles
) -> None:
    """Text fields of forms: a number that is not finite, whole or in range is a 422."""
    model = model_files.add_one.read_bytes()
    before = await snapshot(nc)
    for value in SETTING_VALUES:
        for setting in ("max_batch_size", "sessions", "preferred_batch_sizes"):
            body = cases.form(
                cases.form_part("path", model, "m.onnx"), cases.form_part(setting, value.encode())
            )
            status, text = await send(
                client, "PUT", "/api/v1/models/hostile", body, {"Content-Type": cases.FORM_TYPE}
            )
            assert status == 422 and setting in text, f"{setting}={value!r}: {status} {text[:200]}"
    training = [
        cases.form_part("script", b"print(1)\n", "train.py"),
        cases.form_part("requirements", b"", "requirements.txt"),
        cases.form_part("dataset", b"1,2\n", "data.csv"),
    ]
    for field, values in (("timeout", TIMEOUT_VALUES), ("make_default", ["maybe", "2", "\x00"])):
        for value in values:
            body = cases.form(*training, cases.form_part(field, value.encode()))
            status, text = await send(
                client, "POST", "/api/v1/train/hostile", body, {"Content-Type": cases.FORM_TYPE}
            )
            assert status == 422 and field in text, f"{field}={value!r}: {status} {text[:200]}"
    image = cases.form_part("file", files.png_bytes(), "i.png")
    for field, value in (("preprocess", "evil"), ("input", "nope"), ("preprocess", "\x00")):
        body = cases.form(image, cases.form_part(field, value.encode()))
        status, text = await send(
            client,
            "POST",
            "/api/v1/models/iris/prediction",
            body,
            {"Content-Type": cases.FORM_TYPE},
        )
        assert status == 422, f"{field}={value!r}: {status} {text[:200]}"
    assert await snapshot(nc) == before
    status, text = await send(
        client, "PUT", "/api/v1/models/hostile",
        cases.form(cases.form_part("path", model, "m.onnx"), cases.form_part("sessions", b"2")),
        {"Content-Type": cases.FORM_TYPE},
    )  # fmt: skip
    assert status == 201, text


RANDOM_DOCUMENTS = 60
"""Per strategy: enough to mix every kind of element, few enough for a loaded 2-core machine."""


async def test_random_documents_get_an_answer_or_a_4xx_and_never_an_infinity(
    client: Gateway,
) -> None:
    """A seeded hypothesis sample of JSON (NaN, infinities, huge integers, nesting) on the
    prediction and /v2 routes: every answer a 200 without infinities, a 400 or a 422."""
    sent: list[tuple[str, Any]] = []
    for values in drawn(cases.json_values, RANDOM_DOCUMENTS):
        sent.append(("/api/v1/models/iris/prediction", {"values": values}))
    for rows in drawn(cases.iris_rows, RANDOM_DOCUMENTS):
        sent.append(("/api/v1/models/iris/prediction", {"values": rows}))
        tensor = {"name": "float_input", "datatype": "FP32", "shape": [len(rows), 4], "data": rows}
        sent.append(("/v2/models/iris/infer", {"inputs": [tensor]}))
    for document in drawn(cases.oip_documents(), RANDOM_DOCUMENTS):
        for raw in document["inputs"] if isinstance(document["inputs"], list) else ():
            if isinstance(raw, dict) and raw.get("name") == "x":
                raw["name"] = "float_input"
        sent.append(("/v2/models/iris/infer", document))
    statuses: dict[int, int] = {}
    for path, document in sent:
        body = json.dumps(document).encode()  # writes NaN and Infinity, as Python clients do
        status, text = await send(client, "POST", path, body, {"Content-Type": "application/json"})
        statuses[status] = statuses.get(status, 0) + 1
        assert status in (200, 400, 422), f"{path} {body[:300]!r}: {status} {text[:300]}"
        if cases.not_finite(document) or cases.too_large(document):
            assert status == 400 and "not valid JSON" in text, f"{body[:300]!r}: {text[:300]}"
        if status == 200:
            answer = orjson.loads(text)  # refuses NaN and Infinity: a 200 has neither
            assert "outputs" in answer, text[:300]
        else:
            assert _error_message(text), text[:300]
    print(f"\n{len(sent)} random documents: statuses {sorted(statuses.items())}")
    for route in cases.json_routes()[:1] + cases.json_routes()[6:7]:
        await good_request_works(client, route)
