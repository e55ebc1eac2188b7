"""Predictions over REST: JSON values, images, versions, and every way a request can be wrong."""

from __future__ import annotations

import asyncio
import io
import json
import time

import aiohttp
import numpy as np
import pytest
from PIL import Image

from mlbuffet.protocol import subjects
from mlbuffet.protocol.inference import InferRequest
from mlbuffet.protocol.wire import unpack
from tests.conftest import eventually
from tests.gateway.conftest import upload_file
from tests.onnx_models import spin

PREDICTION_OK = {"code": 200, "description": "Prediction successful", "name": "OK"}


async def predict(gateway, ref: str, values, method: str = "POST"):
    body = io.BytesIO(json.dumps({"values": values}).encode())
    response = await gateway.request(
        method,
        f"/api/v1/models/{ref}/prediction",
        data=body,
        headers={"Content-Type": "application/json"},
    )
    return response.status, await response.json()


async def ready(host, name: str, version: int | None = None) -> None:
    def check() -> bool:
        served = host.served.get(name)
        record = host.view.records.get(name)
        if served is None or record is None:
            return False
        # The host has seen the latest record and serves what it says.
        return served.default.version == record.default_version and (
            version is None or record.default_version == version
        )

    await eventually(check)


@pytest.fixture
async def iris(gateway, serving, seed_iris):
    await upload_file(gateway, "iris", seed_iris)
    await ready(serving, "iris")
    return gateway


async def test_seed_iris_answers_as_the_original_readme_says(iris):
    status, body = await predict(iris, "iris.onnx", [2, 5, 1, 4])
    assert status == 200, body
    assert body["http_status"] == PREDICTION_OK
    assert body["values"] == [1]
    status, body = await predict(iris, "iris", [5.1, 3.5, 1.4, 0.2])
    assert body["values"] == [0]


async def test_get_with_a_json_body_works_as_in_the_original_readme(iris):
    status, body = await predict(iris, "iris.onnx", [2, 5, 1, 4], method="GET")
    assert status == 200 and body["values"] == [1]


async def test_a_batch_answers_one_value_per_row_and_every_output(iris):
    status, body = await predict(iris, "iris", [[2, 5, 1, 4], [5.1, 3.5, 1.4, 0.2]])
    assert status == 200, body
    assert body["values"] == [1, 0]
    assert body["outputs"]["output_label"] == [1, 0]
    probabilities = body["outputs"]["output_probability"]
    assert len(probabilities) == 2 and set(probabilities[0]) == {"0", "1", "2"}
    assert probabilities[0]["1"] == max(probabilities[0].values())
    assert abs(sum(probabilities[1].values()) - 1) < 1e-5
    assert (
        body["model"] == "iris" and body["version"] == 1 and body["node"].startswith("modelhost-")
    )


@pytest.mark.parametrize(
    ("values", "status", "words"),
    [
        ([1, 2, 3], 422, "shape [1, 3]"),
        ([[1, 2, 3, 4], [1, 2]], 422, "rectangular"),
        (["a", "b", "c", "d"], 422, "numbers"),
        ([[[1, 2, 3, 4]]], 422, "expects [-1, 4]"),
        ({"float_input": [1, 2, 3, 4], "extra": [1]}, 422, "unknown input 'extra'"),
        ({"wrong": [1, 2, 3, 4]}, 422, "unknown input"),
        ([], 422, "shape"),
        (None, 422, "number, a string or a list"),
        ([True, None, 1, 2], 422, "numbers"),
    ],
)
async def test_values_that_do_not_fit_the_model_are_422_with_the_expected_shape(
    iris, values, status, words
):
    code, body = await predict(iris, "iris", values)
    assert code == status, body
    assert words in body["http_status"]["description"]


@pytest.mark.parametrize(
    ("raw", "status", "words"),
    [
        (b"", 422, "No json data"),
        (b"{", 400, "not valid JSON"),
        (b'{"value": [1, 2, 3, 4]}', 422, "No test observation provided"),
        (b"[2, 5, 1, 4]", 422, "JSON object"),
    ],
)
async def test_malformed_prediction_bodies(iris, raw, status, words):
    response = await iris.post(
        "/api/v1/models/iris/prediction", data=raw, headers={"Content-Type": "application/json"}
    )
    body = await response.json()
    assert response.status == status, body
    assert words in body["http_status"]["description"]


async def test_unknown_model_version_and_name_errors(iris):
    assert (await predict(iris, "ghost", [1]))[0] == 404
    assert (await predict(iris, "iris:3", [2, 5, 1, 4]))[0] == 404
    assert (await predict(iris, "no$such", [1]))[0] == 400


async def test_a_model_no_modelhost_serves_is_503(make_gateway, seed_iris):
    gateway = await make_gateway(no_responders_wait_s=0.2)
    await upload_file(gateway, "iris", seed_iris)
    status, body = await predict(gateway, "iris", [2, 5, 1, 4])
    assert status == 503, body
    assert "no modelhost serves" in body["http_status"]["description"]


async def test_a_prediction_right_after_the_first_upload_waits_for_a_host(
    make_gateway, serving, seed_iris
):
    gateway = await make_gateway(no_responders_wait_s=5)
    await upload_file(gateway, "iris", seed_iris)
    status, body = await predict(gateway, "iris", [2, 5, 1, 4])
    assert status == 200, body


async def test_pinned_versions_answer_from_their_own_file(gateway, serving, model_files):
    await upload_file(gateway, "adder", model_files.add_one)
    await upload_file(gateway, "adder", model_files.add_two)
    await ready(serving, "adder", 2)
    assert (await predict(gateway, "adder:1", [0, 0, 0, 0]))[1]["values"] == [[1, 1, 1, 1]]
    assert (await predict(gateway, "adder:2", [0, 0, 0, 0]))[1]["values"] == [[2, 2, 2, 2]]
    status, body = await predict(gateway, "adder", [0, 0, 0, 0])
    assert status == 200 and body["values"] == [[2, 2, 2, 2]] and body["version"] == 2


async def test_a_new_default_is_followed(gateway, serving, model_files):
    await upload_file(gateway, "adder", model_files.add_one)
    await upload_file(gateway, "adder", model_files.add_two)
    await gateway.post("/api/v1/models/adder/default", json={"default": 1})
    await ready(serving, "adder", 1)
    assert (await predict(gateway, "adder", [1, 1, 1, 1]))[1]["values"] == [[2, 2, 2, 2]]


async def test_multi_input_models_take_a_map_of_input_names(gateway, serving, model_files):
    await upload_file(gateway, "pair", model_files.two_inputs)
    await ready(serving, "pair")
    status, body = await predict(gateway, "pair", {"a": [1, 2], "b": [3, 4]})
    assert status == 200, body
    assert body["outputs"] == {"sum": [[4, 6]], "product": [[3, 8]]}
    assert body["values"] == [[4, 6]]
    status, body = await predict(gateway, "pair", [1, 2])
    assert status == 422 and "map of input names" in body["http_status"]["description"]
    status, body = await predict(gateway, "pair", {"a": [1, 2]})
    assert status == 422 and "missing input b" in body["http_status"]["description"]


async def test_every_datatype_goes_through_json(gateway, serving, model_files):
    await upload_file(gateway, "types", model_files.all_types)
    await ready(serving, "types")
    values = {
        "in_BOOL": [True, False],
        "in_INT8": [-128, 127],
        "in_INT16": [-32768, 32767],
        "in_INT32": [-(2**31), 2**31 - 1],
        "in_INT64": [-(2**63), 2**63 - 1],
        "in_UINT8": [0, 255],
        "in_UINT16": [0, 65535],
        "in_UINT32": [0, 2**32 - 1],
        "in_UINT64": [0, 2**64 - 1],
        "in_FP16": [0.5, -2.0],
        "in_FP32": [1.25, -3.5],
        "in_FP64": [1e300, -1e-300],
        "in_BYTES": ["héllo", ""],
    }
    status, body = await predict(gateway, "types", values)
    assert status == 200, body
    for name, given in values.items():
        assert body["outputs"][name.replace("in_", "out_")] == [given], name


@pytest.mark.parametrize(
    ("name", "value", "words"),
    [
        ("in_INT8", [1, 300], "within -128..127"),
        ("in_UINT8", [-1, 0], "within 0..255"),
        ("in_INT32", [1.5, 2], "whole numbers"),
        ("in_BOOL", [1, 0], "true/false"),
        ("in_BYTES", [1, 2], "strings"),
        ("in_FP32", ["1", "2"], "numbers"),
    ],
)
async def test_values_out_of_a_datatypes_range_are_422(
    gateway, serving, model_files, name, value, words
):
    await upload_file(gateway, "types", model_files.all_types)
    await ready(serving, "types")
    values = {
        n: [0, 0]
        for n in (
            "in_INT8",
            "in_INT16",
            "in_INT32",
            "in_INT64",
            "in_UINT8",
            "in_UINT16",
            "in_UINT32",
            "in_UINT64",
            "in_FP16",
            "in_FP32",
            "in_FP64",
        )
    }
    values |= {"in_BOOL": [True, True], "in_BYTES": ["a", "b"], name: value}
    status, body = await predict(gateway, "types", values)
    assert status == 422, body
    assert words in body["http_status"]["description"]


async def test_a_request_body_over_the_limit_is_413(make_gateway, serving, seed_iris):
    gateway = await make_gateway(max_request_bytes=1024)
    await upload_file(gateway, "iris", seed_iris)
    status, body = await predict(gateway, "iris", [[2.0, 5.0, 1.0, 4.0]] * 200)
    assert status == 413, body


async def test_a_tensor_over_the_nats_payload_limit_is_413(gateway, serving, model_files):
    await upload_file(gateway, "means", model_files.nhwc)
    await ready(serving, "means")
    png = io.BytesIO()
    Image.new("RGB", (1800, 1800), (10, 20, 30)).save(png, format="PNG")  # 9.7 MB as uint8 NHWC
    response = await gateway.post(
        "/api/v1/models/means/prediction", data=image_form(png.getvalue())
    )
    body = await response.json()
    assert response.status == 413, body
    assert "NATS limit" in body["http_status"]["description"]


async def test_a_request_past_its_deadline_is_504_and_the_host_skips_it(
    make_gateway, start_modelhost, tmp_path
):
    host = await start_modelhost(workers=1, max_inflight=1)
    patient = await make_gateway(request_timeout_s=60)
    hasty = await make_gateway(request_timeout_s=0.3)
    spin(tmp_path / "spin.onnx")
    await upload_file(patient, "spin", tmp_path / "spin.onnx")
    await ready(host, "spin")
    x = [[1.0] * 256]
    busy = asyncio.create_task(predict(patient, "spin", {"x": x, "reps": [60_000, 1]}))
    await asyncio.sleep(0.1)
    status, body = await predict(hasty, "spin", {"x": x, "reps": [1, 1]})
    assert status == 504, body
    assert "within" in body["http_status"]["description"]
    status, body = await busy
    assert status == 200 and np.allclose(body["values"], x)
    await eventually(lambda: host.stats.expired == 1)


async def test_a_prediction_carries_its_deadline_in_the_payload_and_no_nats_headers(
    make_gateway, serving, seed_iris, nc
):
    gateway = await make_gateway(request_timeout_s=7)
    await upload_file(gateway, "iris", seed_iris)
    await ready(serving, "iris")
    seen: asyncio.Queue = asyncio.Queue()

    async def watch(msg) -> None:
        await seen.put(msg)

    # Outside the modelhosts' queue group: a copy of every request, answered by the host.
    sub = await nc.subscribe(subjects.infer("iris"), cb=watch)
    await nc.flush()
    sent_at = time.time()
    status, body = await predict(gateway, "iris", [2, 5, 1, 4])
    await sub.unsubscribe()
    assert status == 200 and body["values"] == [1]
    msg = await asyncio.wait_for(seen.get(), 5)
    assert not msg.headers
    request = unpack(msg.data, InferRequest.from_dict)
    assert sent_at + 6 < request.deadline_ms / 1000 < time.time() + 7


async def test_concurrent_predictions_are_spread_over_two_modelhosts(
    gateway, start_modelhost, seed_iris
):
    first = await start_modelhost()
    second = await start_modelhost()
    await upload_file(gateway, "iris", seed_iris)
    await ready(first, "iris")
    await ready(second, "iris")
    answers = await asyncio.gather(*(predict(gateway, "iris", [2, 5, 1, 4]) for _ in range(80)))
    assert all(status == 200 and body["values"] == [1] for status, body in answers)
    assert {body["node"] for _, body in answers} == {first.node_id, second.node_id}


async def test_a_version_switch_under_load_fails_no_request(gateway, start_modelhost, model_files):
    hosts = [await start_modelhost(), await start_modelhost()]
    await upload_file(gateway, "adder", model_files.add_one)
    for host in hosts:
        await ready(host, "adder", 1)
    results: list[tuple[int, object]] = []
    stop = asyncio.Event()

    async def load() -> None:
        for _ in range(2000):  # bounded
            if stop.is_set():
                return
            status, body = await predict(gateway, "adder", [0, 0, 0, 0])
            results.append((status, body.get("values")))

    workers = [asyncio.create_task(load()) for _ in range(8)]
    await asyncio.sleep(0.3)
    await upload_file(gateway, "adder", model_files.add_two)
    for host in hosts:
        await ready(host, "adder", 2)
    await asyncio.sleep(0.3)
    stop.set()
    await asyncio.gather(*workers)
    assert results and all(status == 200 for status, _ in results), [
        r for r in results if r[0] != 200
    ][:3]
    answers = [values for _, values in results]
    assert [[1, 1, 1, 1]] in answers and [[2, 2, 2, 2]] in answers
    # Once a host has switched it never answers with the old version again.
    last_old = max(i for i, v in enumerate(answers) if v == [[1, 1, 1, 1]])
    assert all(v == [[2, 2, 2, 2]] for v in answers[last_old + 1 :][-20:])


def image_form(
    data: bytes, field: str = "file", content_type: str = "image/jpeg", **fields
) -> aiohttp.FormData:
    form = aiohttp.FormData()
    form.add_field(field, data, filename="picture.jpg", content_type=content_type)
    for name, value in fields.items():
        form.add_field(name, value)
    return form


async def test_an_image_is_resized_and_laid_out_nchw(gateway, serving, model_files, seed_dog):
    await upload_file(gateway, "means", model_files.nchw)
    await ready(serving, "means")
    response = await gateway.post(
        "/api/v1/models/means/prediction", data=image_form(seed_dog.read_bytes())
    )
    body = await response.json()
    assert response.status == 200, body
    resized = np.asarray(
        Image.open(seed_dog).convert("RGB").resize((64, 64), Image.Resampling.BILINEAR)
    )
    expected = resized.reshape(-1, 3).mean(axis=0)
    assert np.allclose(body["values"][0], expected, atol=1e-3)


async def test_an_image_keeps_its_size_for_a_dynamic_nhwc_uint8_input(
    gateway, serving, model_files, seed_dog
):
    await upload_file(gateway, "means", model_files.nhwc)
    await ready(serving, "means")
    response = await gateway.get(
        "/api/v1/models/means/prediction", data=image_form(seed_dog.read_bytes(), field="path")
    )
    body = await response.json()
    assert response.status == 200, body
    expected = np.asarray(Image.open(seed_dog).convert("RGB")).reshape(-1, 3).mean(axis=0)
    assert np.allclose(body["values"][0], expected, atol=1e-3)


async def test_image_preprocessing_options(gateway, serving, model_files, seed_dog):
    await upload_file(gateway, "means", model_files.nchw)
    await ready(serving, "means")
    raw = await (
        await gateway.post(
            "/api/v1/models/means/prediction", data=image_form(seed_dog.read_bytes())
        )
    ).json()
    unit = await (
        await gateway.post(
            "/api/v1/models/means/prediction?preprocess=unit",
            data=image_form(seed_dog.read_bytes()),
        )
    ).json()
    assert np.allclose(np.array(unit["values"]) * 255, raw["values"], atol=1e-2)
    imagenet = await gateway.post(
        "/api/v1/models/means/prediction",
        data=image_form(seed_dog.read_bytes(), preprocess="imagenet"),
    )
    body = await imagenet.json()
    expected = (np.array(unit["values"][0]) - [0.485, 0.456, 0.406]) / [0.229, 0.224, 0.225]
    assert np.allclose(body["values"][0], expected, atol=1e-3)


async def test_the_dog_through_squeezenet(gateway, serving, model_files, seed_dog):
    await upload_file(gateway, "squeezenet", model_files.squeezenet)
    await ready(serving, "squeezenet")
    response = await gateway.post(
        "/api/v1/models/squeezenet/prediction?preprocess=imagenet",
        data=image_form(seed_dog.read_bytes()),
    )
    body = await response.json()
    assert response.status == 200, body
    scores = np.array(body["values"])
    assert scores.shape == (1, 1000, 1, 1)
    assert abs(scores.sum() - 1) < 1e-3


async def test_image_errors(gateway, serving, model_files, seed_dog, seed_iris):
    await upload_file(gateway, "means", model_files.nchw)
    await upload_file(gateway, "iris", seed_iris)
    await ready(serving, "means")
    png = io.BytesIO()
    Image.new("RGB", (8, 8)).save(png, format="PNG")
    cases = [
        (
            "means",
            image_form(b"not an image at all", content_type="image/png"),
            415,
            "not an image",
        ),
        ("means", image_form(seed_dog.read_bytes(), content_type="text/plain"), 415, "text/plain"),
        ("means", image_form(seed_dog.read_bytes(), field="picture"), 422, "'file'"),
        ("means", image_form(png.getvalue(), preprocess="sharpen"), 422, "preprocess"),
        ("means", image_form(png.getvalue(), input="nope"), 422, "unknown input"),
        ("iris", image_form(png.getvalue()), 422, "rank 3 or 4"),
    ]
    for model, form, status, words in cases:
        response = await gateway.post(f"/api/v1/models/{model}/prediction", data=form)
        body = await response.json()
        assert response.status == status, (words, body)
        assert words in body["http_status"]["description"], body
