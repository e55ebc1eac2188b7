"""Training through mlbuffet.Client and SyncClient: a real trainer (process backend), real NATS.

The example job (a scikit-learn classifier from iris.csv, converted with
skl2onnx) runs in the trainer's cached virtualenv, so a job takes seconds.
"""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from mlbuffet import Client, SyncClient
from mlbuffet.protocol.errors import (
    BadRequestError,
    ConflictError,
    ModelNotFoundError,
    ServiceUnavailableError,
)
from mlbuffet.protocol.jobs import JobState
from tests.trainer.conftest import iris_csv, start_trainer  # noqa: F401 - fixtures used here
from tests.trainer.example_job import REQUIREMENTS, TRAIN_SCRIPT

SETOSA = [5.1, 3.5, 1.4, 0.2]
VIRGINICA = [6.9, 3.1, 5.4, 2.1]

SLEEPING = 'import time\nprint("started", flush=True)\ntime.sleep(120)\n'
FAILING = 'print("reading the data", flush=True)\nraise SystemExit("the data is bad")\n'


async def predicted_version(client: Client, model: str, version: int) -> Any:
    """The prediction once the modelhost serves `version` as the default."""
    features = np.array([SETOSA, VIRGINICA], dtype=np.float32)
    for _ in range(100):
        result = await client.infer(model, features)
        if result.version == version:
            return result
        await asyncio.sleep(0.1)
    raise AssertionError(f"{model} version {version} never served")


@pytest.mark.processes
async def test_a_trained_version_is_followed_registered_and_served(
    client: Client,
    start_trainer: Any,  # noqa: F811 - the imported fixture
    start_modelhost: Any,
    iris_csv: Path,  # noqa: F811
    seed_iris: Path,
) -> None:
    await start_modelhost()
    await start_trainer(backend="process")
    await client.upload("flowers", seed_iris, description="the seed's model")

    job = await client.train(
        "flowers",
        TRAIN_SCRIPT.encode(),
        REQUIREMENTS.encode(),
        iris_csv,
        output_file="classifier.onnx",
        description="logistic regression",
    )
    followed = [line async for line in client.job_logs(job, follow=True)]
    assert "accuracy" in "\n".join(followed)
    assert followed[-1] == "[trainer] succeeded: version 2"

    record = await client.wait_job(job, timeout=30)
    assert record.state is JobState.SUCCEEDED and record.version == 2
    assert record.exit_code == 0
    assert record.spec.data == ("iris.csv",) and record.spec.script == "train.py"
    assert [j.job for j in await client.jobs()] == [job]
    assert [line async for line in client.job_logs(job)] == followed

    model = await client.model("flowers")
    assert model.default_version == 2
    assert model.versions[2].description == "logistic regression"
    result = await predicted_version(client, "flowers", 2)
    assert result["label"].tolist() == [0, 2]

    with pytest.raises(ConflictError):
        await client.cancel(job)


@pytest.mark.processes
async def test_cancel_stops_a_running_job_and_a_failing_script_says_why(
    nats_server: Any,
    client: Client,
    start_trainer: Any,  # noqa: F811
    iris_csv: Path,  # noqa: F811
) -> None:
    await start_trainer(backend="process")
    job = await client.train("sleepy", SLEEPING.encode(), REQUIREMENTS.encode(), iris_csv)
    async for line in client.job_logs(job, follow=True):
        if line == "started":
            break
    requested = await client.cancel(job)
    assert requested.cancel_requested
    record = await client.wait_job(job, timeout=30)
    assert record.state is JobState.CANCELLED

    # The same from a plain script, with the blocking client.
    def failing() -> tuple[Any, list[str]]:
        with SyncClient(nats_server.url) as sync:
            failed = sync.train("broken", FAILING.encode(), REQUIREMENTS.encode(), iris_csv)
            lines = list(sync.job_logs(failed, follow=True))
            return sync.wait_job(failed, timeout=30), lines

    record, lines = await asyncio.to_thread(failing)
    assert record.state is JobState.FAILED
    assert record.exit_code == 1 and "exit" in (record.reason or "")
    assert "the data is bad" in lines
    with pytest.raises(ModelNotFoundError):
        await client.model("broken")


async def test_bad_jobs_are_refused_before_anything_runs(
    client: Client,
    iris_csv: Path,  # noqa: F811
) -> None:
    with pytest.raises(ServiceUnavailableError, match="no trainer"):
        await client.train("iris", b"print(1)", b"", iris_csv)
    with pytest.raises(BadRequestError, match="are named"):
        await client.train("iris", b"print(1)", b"", iris_csv, extra_files=[iris_csv])
    with pytest.raises(BadRequestError, match="no such file"):
        await client.train("iris", b"print(1)", b"", iris_csv.with_name("nosuch.csv"))
    with pytest.raises(BadRequestError, match="invalid model name"):
        await client.train("bad name", b"print(1)", b"", iris_csv)
    with pytest.raises(ModelNotFoundError):
        await client.job("0123456789abcdef0123")
    with pytest.raises(BadRequestError):
        await client.job("../etc")
    assert await client.jobs() == []
