"""Bad training requests get a clear 4xx (or 503 with no trainer), in the seed's envelope."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import aiohttp
import pytest

from tests.trainer.example_job import REQUIREMENTS, TRAIN_SCRIPT

FILES = {
    "script": ("train.py", TRAIN_SCRIPT),
    "requirements": ("requirements.txt", REQUIREMENTS),
    "dataset": ("iris.csv", "a,b\n1,2\n"),
}


def form(without: str | None = None, **fields: str) -> aiohttp.FormData:
    data = aiohttp.FormData()
    for field, (filename, text) in FILES.items():
        if field != without:
            data.add_field(field, text.encode(), filename=filename)
    for name, value in fields.items():
        data.add_field(name, value)
    return data


async def answer(response: aiohttp.ClientResponse) -> tuple[int, dict[str, Any]]:
    body = await response.json()
    assert body["http_status"]["code"] == response.status
    return response.status, body


@pytest.mark.parametrize("field", ["script", "requirements", "dataset"])
async def test_a_missing_file_is_422_naming_the_field(gateway: Any, field: str) -> None:
    status, body = await answer(await gateway.post("/api/v1/train/iris", data=form(without=field)))
    assert status == 422
    assert f"No {field} file (form field '{field}') specified" == body["http_status"]["description"]


async def test_a_body_that_is_not_a_form_is_422(gateway: Any) -> None:
    status, body = await answer(await gateway.post("/api/v1/train/iris", json={"script": "x"}))
    assert status == 422
    assert "multipart/form-data" in body["http_status"]["description"]


@pytest.mark.parametrize(
    ("path", "fields", "status", "words"),
    [
        ("/api/v1/train/bad%20name", {}, 400, "invalid model name"),
        ("/api/v1/train/iris/..onnx", {}, 400, "invalid output file name"),
        ("/api/v1/train/iris", {"timeout": "soon"}, 422, "timeout must be a number"),
        ("/api/v1/train/iris", {"timeout": "-5"}, 422, "timeout must be a positive"),
        ("/api/v1/train/iris", {"make_default": "perhaps"}, 422, "make_default must be true"),
    ],
)
async def test_bad_settings_are_refused_with_what_was_wrong(
    gateway: Any, path: str, fields: dict[str, str], status: int, words: str
) -> None:
    code, body = await answer(await gateway.post(path, data=form(**fields)))
    assert code == status
    assert words in body["http_status"]["description"]


async def test_a_submission_with_no_trainer_running_is_503(gateway: Any) -> None:
    status, body = await answer(await gateway.post("/api/v1/train/iris", data=form()))
    assert status == 503
    assert "no trainer is running" in body["http_status"]["description"]


@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("GET", "/api/v1/train/0123456789abcdef0123"),
        ("GET", "/api/v1/train/0123456789abcdef0123/logs"),
        ("GET", "/api/v1/train/0123456789abcdef0123/logs?follow=1"),
        ("DELETE", "/api/v1/train/0123456789abcdef0123"),
    ],
)
async def test_an_unknown_job_is_404(gateway: Any, method: str, path: str) -> None:
    status, body = await answer(await gateway.request(method, path))
    assert status == 404
    assert "training job '0123456789abcdef0123' not found" in body["http_status"]["description"]


async def test_an_invalid_job_id_is_400(gateway: Any) -> None:
    status, _ = await answer(await gateway.get("/api/v1/train/no.such"))
    assert status == 400


async def test_no_jobs_yet_is_an_empty_list(gateway: Any) -> None:
    status, body = await answer(await gateway.get("/api/v1/train"))
    assert status == 200
    assert body["jobs"] == []


async def test_a_finished_job_cannot_be_cancelled_twice(
    gateway: Any, start_trainer: Any, tmp_path: Path
) -> None:
    await start_trainer()
    data = aiohttp.FormData()
    data.add_field("script", b"import time\ntime.sleep(60)\n", filename="train.py")
    data.add_field("requirements", b"", filename="requirements.txt")
    data.add_field("dataset", b"x\n", filename="data.csv")
    status, accepted = await answer(await gateway.post("/api/v1/train/iris", data=data))
    assert status == 202
    job = accepted["job"]
    status, body = await answer(await gateway.delete(f"/api/v1/train/{job}"))
    assert status in (200, 202)
    logs = await gateway.get(f"/api/v1/train/{job}/logs", params={"follow": "1"}, timeout=120)
    assert "[trainer] cancelled" in await logs.text() or body["state"] == "cancelled"
    status, body = await answer(await gateway.get(f"/api/v1/train/{job}"))
    assert body["state"] == "cancelled"
    status, body = await answer(await gateway.delete(f"/api/v1/train/{job}"))
    assert status == 409
    assert "has already finished (cancelled)" in body["http_status"]["description"]
