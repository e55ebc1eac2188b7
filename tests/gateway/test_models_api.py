"""Model management over REST: list, describe, upload, default, delete, download, and their errors."""

from __future__ import annotations

import hashlib

import aiohttp
import pytest

from tests.gateway.conftest import upload_file


async def models_of(gateway) -> list[str]:
    response = await gateway.get("/api/v1/models")
    assert response.status == 200
    return (await response.json())["model_list"]


async def test_an_empty_registry_lists_no_models(gateway):
    assert await models_of(gateway) == []


async def test_upload_by_put_and_post_make_numbered_versions_that_become_default(
    gateway, model_files
):
    first = await upload_file(gateway, "adder", model_files.add_one, method="PUT")
    second = await upload_file(gateway, "adder", model_files.add_two, method="POST")
    assert (first["version"], first["default_version"]) == (1, 1)
    assert (second["version"], second["default_version"]) == (2, 2)
    assert second["sha256"] == hashlib.sha256(model_files.add_two.read_bytes()).hexdigest()
    assert await models_of(gateway) == ["adder"]


async def test_a_trailing_onnx_in_the_name_is_stripped(gateway, seed_iris):
    body = await upload_file(gateway, "iris.onnx", seed_iris)
    assert body["model"] == "iris"
    response = await gateway.get("/api/v1/models/iris.onnx")
    assert response.status == 200
    assert (await response.json())["model"] == "iris"


async def test_model_details_show_signature_versions_and_the_models_own_description(
    gateway, seed_iris
):
    await upload_file(gateway, "iris", seed_iris)
    response = await gateway.get("/api/v1/models/iris")
    body = await response.json()
    assert response.status == 200
    assert body["versions"] == [1] and body["default_version"] == 1
    assert body["description"].startswith("Clasificación de especies")
    assert body["library"] == "skl2onnx"
    assert body["inputs"] == [
        {"name": "float_input", "datatype": "FP32", "shape": [-1, 4], "onnx_type": "tensor(float)"}
    ]
    assert [o["name"] for o in body["outputs"]] == ["output_label", "output_probability"]
    assert body["outputs"][1]["datatype"] == "OBJECT"


async def test_information_lists_every_model_with_its_description(gateway, model_files, seed_iris):
    await upload_file(gateway, "iris", seed_iris)
    await upload_file(gateway, "adder", model_files.add_one, description="adds one")
    response = await gateway.get("/api/v1/models/information")
    body = await response.json()
    assert response.status == 200
    assert [m["model"] for m in body["model_list"]] == ["adder", "iris"]
    assert body["model_list"][0]["description"] == "adds one"
    assert body["model_list"][1]["description"].startswith("Clasificación")


async def test_model_information_has_the_tag_list_versions_of_mlbuffet_v2(gateway, model_files):
    await upload_file(gateway, "adder", model_files.add_one, description="first")
    await upload_file(gateway, "adder", model_files.add_two, description="second")
    response = await gateway.get("/api/v1/models/adder/information")
    body = await response.json()
    assert response.status == 200
    assert body["default_version"] == 2
    versions = body["tag_list_versions"]
    assert set(versions) == {"1", "2"}
    assert versions["1"]["description"] == "first" and versions["1"]["file"] == "add_one.onnx"
    assert versions["2"]["description"] == "second"
    assert versions["2"]["size"] == model_files.add_two.stat().st_size
    assert versions["2"]["time"]


async def test_a_pinned_version_has_its_own_details(gateway, model_files):
    await upload_file(gateway, "adder", model_files.add_one, description="one")
    await upload_file(gateway, "adder", model_files.add_two, description="two")
    body = await (await gateway.get("/api/v1/models/adder:1")).json()
    assert (body["version"], body["version_description"]) == (1, "one")
    body = await (await gateway.get("/api/v1/models/adder:default")).json()
    assert body["version"] == 2


@pytest.mark.parametrize(
    ("path", "status"),
    [
        ("/api/v1/models/nope", 404),
        ("/api/v1/models/adder:7", 404),
        ("/api/v1/models/bad%20name", 400),
        ("/api/v1/models/adder:zero", 400),
        ("/api/v1/models/adder:0", 400),
        ("/api/v1/models/nope/information", 404),
        ("/api/v1/models/adder:1/information", 400),
        ("/api/v1/models/nope/download", 404),
        ("/api/v1/models/adder:7/download", 404),
    ],
)
async def test_unknown_or_invalid_models_and_versions_are_clear_errors(
    gateway, model_files, path, status
):
    await upload_file(gateway, "adder", model_files.add_one)
    response = await gateway.get(path)
    body = await response.json()
    assert response.status == status, body
    assert body["http_status"]["code"] == status
    assert body["http_status"]["description"]


async def test_description_update(gateway, seed_iris):
    await upload_file(gateway, "iris", seed_iris)
    text = (
        "This model classifies a 4 element array input between different species of Iris flowers."
    )
    response = await gateway.post("/api/v1/models/iris.onnx", json={"model_description": text})
    assert response.status == 200, await response.text()
    body = await (await gateway.get("/api/v1/models/iris")).json()
    assert body["description"] == text


@pytest.mark.parametrize(
    ("raw", "status"),
    [
        (b'{"description": "x"}', 422),
        (b'{"model_description": 5}', 422),
        (b"{oops", 400),
        (b"", 422),
        (b'"just a string"', 422),
    ],
)
async def test_description_update_rejects_bad_bodies(gateway, seed_iris, raw, status):
    await upload_file(gateway, "iris", seed_iris)
    response = await gateway.post(
        "/api/v1/models/iris", data=raw, headers={"Content-Type": "application/json"}
    )
    assert response.status == status, await response.text()
    body = await (await gateway.get("/api/v1/models/iris")).json()
    assert body["description"].startswith("Clasificación")


async def test_description_update_of_an_unknown_model_is_404(gateway):
    response = await gateway.post("/api/v1/models/ghost", json={"model_description": "x"})
    assert response.status == 404


async def registry_snapshot(gateway) -> list[dict]:
    body = await (await gateway.get("/api/v1/models/information")).json()
    return body["model_list"]


async def test_a_file_onnxruntime_cannot_load_is_422_and_changes_nothing(gateway, model_files):
    await upload_file(gateway, "adder", model_files.add_one)
    before = await registry_snapshot(gateway)
    form = aiohttp.FormData()
    form.add_field("path", model_files.not_onnx.read_bytes(), filename="model.onnx")
    response = await gateway.put("/api/v1/models/adder", data=form)
    body = await response.json()
    assert response.status == 422
    assert "not an ONNX model" in body["http_status"]["description"]
    assert str(model_files.not_onnx.parent) not in body["http_status"]["description"]
    assert await registry_snapshot(gateway) == before
    response = await gateway.put("/api/v1/models/fresh", data=form_with(model_files.not_onnx))
    assert response.status == 422
    assert await models_of(gateway) == ["adder"]


def form_with(path, field="path", filename=None, content=None) -> aiohttp.FormData:
    form = aiohttp.FormData()
    form.add_field(
        field, content if content is not None else path.read_bytes(), filename=filename or path.name
    )
    return form


async def test_upload_errors(gateway, model_files):
    cases = [
        (form_with(model_files.add_one, field="model"), 422, "named 'path'"),
        (form_with(model_files.add_one, filename="model.pkl"), 415, ".onnx"),
    ]
    for form, status, words in cases:
        response = await gateway.put("/api/v1/models/adder", data=form)
        body = await response.json()
        assert response.status == status, body
        assert words in body["http_status"]["description"]
    response = await gateway.put("/api/v1/models/adder", data=b"raw bytes")
    assert response.status == 415
    response = await gateway.put("/api/v1/models/bad!name", data=form_with(model_files.add_one))
    assert response.status == 400
    response = await gateway.put("/api/v1/models/adder:2", data=form_with(model_files.add_one))
    assert response.status == 400
    response = await gateway.put("/api/v1/models/information", data=form_with(model_files.add_one))
    assert response.status == 405 or response.status == 400
    assert await models_of(gateway) == []


async def test_a_file_over_the_upload_limit_is_413_and_changes_nothing(make_gateway, model_files):
    gateway = await make_gateway(max_upload_bytes=1000)
    response = await gateway.put("/api/v1/models/big", data=form_with(model_files.matmul))
    body = await response.json()
    assert response.status == 413, body
    assert "limit" in body["http_status"]["description"]
    assert await models_of(gateway) == []


async def test_the_file_field_is_accepted_as_well_as_path(gateway, model_files):
    response = await gateway.put(
        "/api/v1/models/adder", data=form_with(model_files.add_one, field="file")
    )
    assert response.status == 201


async def test_setting_the_default_version(gateway, model_files):
    await upload_file(gateway, "adder", model_files.add_one)
    await upload_file(gateway, "adder", model_files.add_two)
    response = await gateway.post("/api/v1/models/adder/default", json={"default": 1})
    assert response.status == 200, await response.text()
    body = await (await gateway.get("/api/v1/models/adder")).json()
    assert body["default_version"] == 1 and body["version"] == 1


@pytest.mark.parametrize(
    ("body", "status"),
    [
        ({"default": 9}, 404),
        ({"default": "1"}, 422),
        ({"default": True}, 422),
        ({"default": 0}, 422),
        ({"version": 1}, 422),
        ([1], 422),
    ],
)
async def test_setting_the_default_rejects_bad_values(gateway, model_files, body, status):
    await upload_file(gateway, "adder", model_files.add_one)
    response = await gateway.post("/api/v1/models/adder/default", json=body)
    assert response.status == status, await response.text()
    assert (await (await gateway.get("/api/v1/models/adder")).json())["default_version"] == 1


async def test_default_of_an_unknown_model_is_404(gateway):
    response = await gateway.post("/api/v1/models/ghost/default", json={"default": 1})
    assert response.status == 404


async def test_deleting_the_default_moves_it_to_the_newest_remaining_version(gateway, model_files):
    for path in (model_files.add_one, model_files.add_two, model_files.add_ten):
        await upload_file(gateway, "adder", path)
    await gateway.post("/api/v1/models/adder/default", json={"default": 2})
    response = await gateway.delete("/api/v1/models/adder")
    body = await response.json()
    assert response.status == 200, body
    assert (body["deleted_version"], body["default_version"], body["versions"]) == (2, 3, [1, 3])
    response = await gateway.delete("/api/v1/models/adder:default")
    body = await response.json()
    assert (body["deleted_version"], body["default_version"], body["versions"]) == (3, 1, [1])


async def test_deleting_a_version_keeps_the_default(gateway, model_files):
    await upload_file(gateway, "adder", model_files.add_one)
    await upload_file(gateway, "adder", model_files.add_two)
    body = await (await gateway.delete("/api/v1/models/adder:1")).json()
    assert (body["deleted_version"], body["default_version"], body["versions"]) == (1, 2, [2])
    assert (await gateway.get("/api/v1/models/adder:1")).status == 404


async def test_deleting_the_last_version_removes_the_model(gateway, model_files):
    await upload_file(gateway, "adder", model_files.add_one)
    body = await (await gateway.delete("/api/v1/models/adder")).json()
    assert body["versions"] == [] and body["default_version"] is None
    assert await models_of(gateway) == []
    assert (await gateway.get("/api/v1/models/adder")).status == 404


async def test_deleting_all_versions_at_once(gateway, model_files):
    await upload_file(gateway, "adder", model_files.add_one)
    await upload_file(gateway, "adder", model_files.add_two)
    body = await (await gateway.delete("/api/v1/models/adder:all")).json()
    assert body["deleted_versions"] == [1, 2]
    assert await models_of(gateway) == []


async def test_version_numbers_are_not_reused_after_a_delete(gateway, model_files):
    await upload_file(gateway, "adder", model_files.add_one)
    await upload_file(gateway, "adder", model_files.add_two)
    await gateway.delete("/api/v1/models/adder:2")
    body = await upload_file(gateway, "adder", model_files.add_ten)
    assert body["version"] == 3


@pytest.mark.parametrize(
    "path", ["/api/v1/models/ghost", "/api/v1/models/ghost:1", "/api/v1/models/ghost:all"]
)
async def test_deleting_an_unknown_model_is_404(gateway, path):
    assert (await gateway.delete(path)).status == 404


async def test_deleting_an_unknown_version_is_404_and_keeps_the_model(gateway, model_files):
    await upload_file(gateway, "adder", model_files.add_one)
    assert (await gateway.delete("/api/v1/models/adder:5")).status == 404
    assert await models_of(gateway) == ["adder"]


async def test_download_gives_back_the_uploaded_bytes(gateway, model_files):
    await upload_file(gateway, "adder", model_files.add_one)
    await upload_file(gateway, "adder", model_files.add_two)
    for path, expected in (
        ("/api/v1/models/adder/download", model_files.add_two),
        ("/api/v1/models/adder:default/download", model_files.add_two),
        ("/api/v1/models/adder:1/download", model_files.add_one),
    ):
        response = await gateway.get(path)
        assert response.status == 200
        data = await response.read()
        assert data == expected.read_bytes(), path
        assert response.headers["X-Model-Sha256"] == hashlib.sha256(data).hexdigest()
        assert expected.name in response.headers["Content-Disposition"]
