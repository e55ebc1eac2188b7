"""A real training job end to end over REST, on each backend.

A scikit-learn classifier is trained from a CSV and converted with skl2onnx
by the job's own script, in its own venv (process) or container (docker);
the trainer checks and registers it; it becomes the default version, a
modelhost loads it, and a prediction over REST comes from it.
"""

from __future__ import annotations

import asyncio
import io
import json
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from aiohttp.test_utils import TestClient

from tests.gateway.conftest import upload_file
from tests.trainer.example_job import REQUIREMENTS, TRAIN_SCRIPT

SETOSA = [5.1, 3.5, 1.4, 0.2]
VIRGINICA = [6.9, 3.1, 5.4, 2.1]


def training_form(iris_csv: Path, **fields: str) -> aiohttp.FormData:
    form = aiohttp.FormData()
    form.add_field("script", TRAIN_SCRIPT.encode(), filename="train.py")
    form.add_field("requirements", REQUIREMENTS.encode(), filename="requirements.txt")
    form.add_field("dataset", iris_csv.read_bytes(), filename="iris.csv")
    for name, value in fields.items():
        form.add_field(name, value)
    return form


async def predict(gateway: TestClient[Any, Any], model: str, values: list[list[float]]) -> Any:
    body = io.BytesIO(json.dumps({"values": values}).encode())
    response = await gateway.post(
        f"/api/v1/models/{model}/prediction",
        data=body,
        headers={"Content-Type": "application/json"},
    )
    return response.status, await response.json()


async def train_and_serve(
    gateway: TestClient[Any, Any], iris_csv: Path, seed_iris: Path
) -> dict[str, Any]:
    await upload_file(gateway, "flowers", seed_iris, description="the seed's model")

    response = await gateway.post(
        "/api/v1/train/flowers/classifier.onnx",
        data=training_form(iris_csv, description="logistic regression on iris.csv"),
    )
    accepted = await response.json()
    assert response.status == 202, accepted
    job = accepted["job"]
    assert accepted["state"] == "queued"

    # Follow the log as it grows: the stream ends when the job does.
    logs = await gateway.get(f"/api/v1/train/{job}/logs", params={"follow": "1"}, timeout=300)
    assert logs.status == 200
    followed = await logs.text()
    assert "accuracy" in followed
    assert "[trainer] succeeded: version 2" in followed

    status = await (await gateway.get(f"/api/v1/train/{job}")).json()
    assert status["state"] == "succeeded", status
    assert status["version"] == 2 and status["exit_code"] == 0
    assert status["output_file"] == "classifier.onnx"
    assert status["started_at"] and status["finished_at"]

    model = await (await gateway.get("/api/v1/models/flowers")).json()
    assert model["default_version"] == 2
    assert model["version_description"] == "logistic regression on iris.csv"
    assert model["file"] == "classifier.onnx"

    # The modelhost switches to the new default; the prediction comes from version 2.
    for _ in range(100):
        code, body = await predict(gateway, "flowers", [SETOSA, VIRGINICA])
        if code == 200 and body["version"] == 2:
            break
        await asyncio.sleep(0.1)
    assert code == 200, body
    assert body["version"] == 2
    assert body["values"] == [0, 2]

    whole = await (await gateway.get(f"/api/v1/train/{job}/logs")).text()
    assert whole == followed
    listed = await (await gateway.get("/api/v1/train")).json()
    assert [j["job"] for j in listed["jobs"]] == [job]
    return status


@pytest.mark.processes
async def test_process_backend_trains_registers_and_serves_a_model(
    start_trainer: Any, start_modelhost: Any, gateway: Any, iris_csv: Path, seed_iris: Path
) -> None:
    await start_modelhost()
    await start_trainer(backend="process")
    status = await train_and_serve(gateway, iris_csv, seed_iris)
    assert status["backend"] == "process"


@pytest.mark.processes
async def test_docker_backend_trains_registers_and_serves_a_model(
    start_trainer: Any,
    start_modelhost: Any,
    gateway: Any,
    iris_csv: Path,
    seed_iris: Path,
    docker_settings: dict[str, Any],
) -> None:
    await start_modelhost()
    await start_trainer(**docker_settings)
    status = await train_and_serve(gateway, iris_csv, seed_iris)
    assert status["backend"] == "docker"
