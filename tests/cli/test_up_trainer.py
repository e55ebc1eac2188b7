"""`mlbuffet up` runs a trainer (unless --no-trainer): a job submitted over REST runs and ends."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from tests.cli.conftest import StartUp
from tests.cli.rest import call, ok

pytestmark = pytest.mark.processes

JOB_BOUND_S = 120.0


def job_files(tmp_path: Path) -> dict[str, Path]:
    files = {
        "script": tmp_path / "train.py",
        "requirements": tmp_path / "requirements.txt",
        "dataset": tmp_path / "data.csv",
    }
    files["script"].write_text('print("hello from the trainer of up")\n')
    files["requirements"].write_text("")
    files["dataset"].write_text("x\n1\n")
    return files


def test_up_runs_a_trainer_that_takes_jobs_over_rest(start_up: StartUp, tmp_path: Path) -> None:
    up = start_up("--modelhosts", "1")
    assert "[up] trainer     trainer-" in up.out()
    accepted = ok("POST", f"{up.rest}/api/v1/train/hello", files=job_files(tmp_path))
    job = accepted["job"]
    deadline = time.monotonic() + JOB_BOUND_S
    while (status := ok("GET", f"{up.rest}/api/v1/train/{job}"))["state"] not in (
        "succeeded",
        "failed",
        "cancelled",
    ):
        assert time.monotonic() < deadline, status
        time.sleep(0.2)
    # The script ran (its line is in the log) and, writing no model, the job failed for that.
    assert "without writing 'model.onnx'" in status["reason"]
    assert status["node"].startswith("trainer-")
    code, log = call("GET", f"{up.rest}/api/v1/train/{job}/logs")
    assert code == 200
    assert b"hello from the trainer of up" in log


def test_up_without_a_trainer_answers_503_to_a_job(start_up: StartUp, tmp_path: Path) -> None:
    up = start_up("--modelhosts", "1", "--no-trainer")
    assert "[up] trainer     none (--no-trainer)" in up.out()
    code, answer = call("POST", f"{up.rest}/api/v1/train/hello", files=job_files(tmp_path))
    assert code == 503, answer
