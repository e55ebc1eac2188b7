"""Batching and execution settings over REST: at upload, through the settings route, in the registry."""

from __future__ import annotations

import asyncio
import json

import aiohttp
import numpy as np

from mlbuffet.protocol.records import ModelRecord, ModelSettings
from tests.conftest import eventually
from tests.gateway.conftest import upload_file

BATCHING = {
    "max_batch_size": 16,
    "max_queue_delay_us": 2000,
    "preferred_batch_sizes": [4, 8],
    "intra_op_threads": 1,
    "sessions": 2,
    "min_replicas": 1,
    "max_replicas": None,
}


def form_with(path, **fields):
    form = aiohttp.FormData()
    form.add_field(
        "path", path.read_bytes(), filename=path.name, content_type="application/octet-stream"
    )
    for name, value in fields.items():
        form.add_field(name, value)
    return form


async def test_settings_given_at_upload_are_stored_in_the_registry(gateway, registry, model_files):
    form = form_with(
        model_files.add_one,
        max_batch_size="16",
        max_queue_delay_us="2000",
        preferred_batch_sizes="4,8",
        sessions="2",
        intra_op_threads="1",
    )
    response = await gateway.put("/api/v1/models/adder", data=form)
    body = await response.json()
    assert response.status == 201, body
    assert body["settings"] == BATCHING
    assert (await registry.get("adder")).settings == ModelSettings.from_dict(BATCHING)
    details = await (await gateway.get("/api/v1/models/adder")).json()
    assert details["settings"] == BATCHING


async def test_the_settings_route_replaces_and_shows_them(gateway, registry, model_files):
    await upload_file(gateway, "adder", model_files.add_one)
    response = await gateway.get("/api/v1/models/adder/settings")
    assert (await response.json())["settings"] == ModelSettings().to_dict()

    response = await gateway.put("/api/v1/models/adder/settings", json=BATCHING)
    body = await response.json()
    assert response.status == 200, body
    assert body["http_status"]["code"] == 200 and body["settings"] == BATCHING
    assert (await registry.get("adder")).settings.to_dict() == BATCHING
    shown = await (await gateway.get("/api/v1/models/adder/settings")).json()
    assert shown["settings"] == BATCHING

    # A later upload without settings keeps them.
    await upload_file(gateway, "adder", model_files.add_two)
    assert (await registry.get("adder")).settings.to_dict() == BATCHING


async def test_batched_predictions_through_rest_are_right(gateway, serving, model_files):
    await upload_file(gateway, "adder", model_files.add_one)
    await gateway.put(
        "/api/v1/models/adder/settings", json={"max_batch_size": 8, "max_queue_delay_us": 20_000}
    )

    def batching_loaded():
        served = serving.served.get("adder")
        return served is not None and served.default.settings.max_batch_size == 8

    await eventually(batching_loaded)

    async def predict(i):
        response = await gateway.post(
            "/api/v1/models/adder/prediction", json={"values": [[i, i, i, i], [0, 0, 0, i]]}
        )
        body = await response.json()
        assert response.status == 200, body
        return body["values"]

    answers = await asyncio.gather(*(predict(i) for i in range(6)))
    for i, values in enumerate(answers):
        assert np.array_equal(values, [[i + 1] * 4, [1, 1, 1, i + 1]])
    stats = serving.stats.versions[("adder", 1)]
    assert stats.batch_size.sum > 2 * stats.batch_size.count, "no two requests shared a run"


async def test_batching_is_refused_for_a_fixed_first_dimension(gateway, registry, model_files):
    form = form_with(model_files.squeezenet, max_batch_size="8")
    response = await gateway.put("/api/v1/models/squeezenet", data=form)
    body = await response.json()
    assert response.status == 422, body
    assert "dynamic first dimension" in body["http_status"]["description"]
    assert await registry.entry("squeezenet") is None

    await upload_file(gateway, "squeezenet", model_files.squeezenet)
    response = await gateway.put("/api/v1/models/squeezenet/settings", json={"max_batch_size": 4})
    assert response.status == 422
    assert "[1, 3, 224, 224]" in (await response.json())["http_status"]["description"]
    response = await gateway.put("/api/v1/models/squeezenet/settings", json={"sessions": 2})
    assert response.status == 200


async def test_bad_settings_get_a_422_that_names_them(gateway, registry, model_files):
    await upload_file(gateway, "adder", model_files.add_one)
    for body, words in (
        ({"max_batch_size": 0}, "max_batch_size"),
        ({"max_batch_size": "8"}, "max_batch_size"),
        ({"max_queue_delay_us": -1}, "max_queue_delay_us"),
        ({"max_batch_size": 4, "preferred_batch_sizes": [8]}, "preferred_batch_sizes"),
        ({"sessions": 0}, "sessions"),
        ({"batch": 4}, "unknown setting 'batch'"),
        ({"min_replicas": -1}, "min_replicas"),
        ({"min_replicas": 1.5}, "min_replicas"),
        ({"max_replicas": 0}, "max_replicas"),
        ({"min_replicas": 3, "max_replicas": 2}, "must not be above max_replicas (2)"),
    ):
        response = await gateway.put("/api/v1/models/adder/settings", json=body)
        answer = await response.json()
        assert response.status == 422, (body, answer)
        assert words in answer["http_status"]["description"]
    response = await gateway.put(
        "/api/v1/models/adder", data=form_with(model_files.add_one, max_batch_size="many")
    )
    assert response.status == 422
    response = await gateway.put(
        "/api/v1/models/adder", data=form_with(model_files.add_one, min_replicas="-2")
    )
    assert response.status == 422
    assert "min_replicas" in (await response.json())["http_status"]["description"]
    response = await gateway.put("/api/v1/models/nobody/settings", json={"sessions": 1})
    assert response.status == 404
    assert (await registry.get("adder")).versions.keys() == {1}, "a refused upload added a version"


async def test_replica_settings_are_taken_at_upload_and_through_the_settings_route(
    gateway, registry, model_files
):
    form = form_with(model_files.add_one, min_replicas="0", max_replicas="3")
    response = await gateway.put("/api/v1/models/adder", data=form)
    body = await response.json()
    assert response.status == 201, body
    assert (body["settings"]["min_replicas"], body["settings"]["max_replicas"]) == (0, 3)
    stored = (await registry.get("adder")).settings
    assert (stored.min_replicas, stored.max_replicas) == (0, 3)

    response = await gateway.put(
        "/api/v1/models/adder/settings", json={"min_replicas": 2, "max_replicas": 2}
    )
    assert response.status == 200, await response.json()
    stored = (await registry.get("adder")).settings
    assert (stored.min_replicas, stored.max_replicas) == (2, 2)

    # Omitted, they take their defaults, as every other setting does.
    response = await gateway.put("/api/v1/models/adder/settings", json={"sessions": 1})
    shown = (await response.json())["settings"]
    assert (shown["min_replicas"], shown["max_replicas"]) == (1, None)


def test_replica_settings_are_not_execution_settings():
    placed = ModelSettings(sessions=2, min_replicas=0, max_replicas=4)
    assert placed.execution() == ModelSettings(sessions=2)
    assert placed.execution() != ModelSettings(sessions=3).execution()


def test_a_record_written_before_settings_existed_still_loads():
    old = {
        "type": ModelRecord.TYPE,
        "name": "iris",
        "description": "",
        "default_version": 0,
        "next_version": 1,
        "created_at": "2024-01-01T00:00:00Z",
        "updated_at": "2024-01-01T00:00:00Z",
        "versions": {},
    }
    record = ModelRecord.from_json(json.dumps(old).encode())
    assert record.settings == ModelSettings()
    again = ModelRecord.from_json(record.with_changes(settings=ModelSettings(sessions=2)).to_json())
    assert again.settings.sessions == 2
