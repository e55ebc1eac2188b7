"""`mlbuffet train` over REST and NATS against a real mesh with a real trainer (process backend).

The example job runs in the trainer's cached virtualenv: a job takes seconds.
"""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import pytest

from tests.trainer.conftest import iris_csv, start_trainer  # noqa: F401 - fixtures used here
from tests.trainer.example_job import REQUIREMENTS, TRAIN_SCRIPT

SLEEPING = 'import time\nprint("started", flush=True)\ntime.sleep(120)\n'
FAILING = 'print("reading the data", flush=True)\nraise SystemExit("the data is bad")\n'


@pytest.fixture
def job_files(tmp_path: Path, iris_csv: Path) -> Any:  # noqa: F811 - the imported fixture
    """`--script --requirements --dataset` for a script given as source text."""

    def files(script: str = TRAIN_SCRIPT) -> list[str]:
        folder = tmp_path / f"job-{len(list(tmp_path.iterdir()))}"
        folder.mkdir()
        (folder / "train.py").write_text(script)
        (folder / "requirements.txt").write_text(REQUIREMENTS)
        return [
            "--script",
            str(folder / "train.py"),
            "--requirements",
            str(folder / "requirements.txt"),
            "--dataset",
            str(iris_csv),
        ]

    return files


@pytest.mark.processes
async def test_submit_follow_status_logs_and_list(
    cli: Any,
    transport: list[str],
    start_trainer: Any,  # noqa: F811
    job_files: Any,
    registry: Any,
) -> None:
    await start_trainer(backend="process")
    run = await cli(
        "train",
        "flowers",
        *job_files(),
        "--description",
        "from the CLI",
        "--follow",
        *transport,
    )
    assert run.code == 0, run.err
    lines = run.out.splitlines()
    assert lines[0].startswith("submitted job ")
    job = lines[0].split()[2]
    assert "accuracy 0.973" in lines
    assert lines[-1] == f"job {job} succeeded: flowers version 1 (the default version)"
    # State changes show as they happen, in the order of a job's life, among the log lines.
    states = [line.split(": ", 1)[1] for line in lines if line.startswith(f"job {job}: ")]
    lifecycle = ["queued", "preparing", "running", "registering", "succeeded"]
    assert "running" in states, lines
    assert states == sorted(states, key=lifecycle.index), states
    log = [line for line in lines[1:-1] if not line.startswith(f"job {job}: ")]
    assert (await registry.get("flowers")).versions[1].description == "from the CLI"

    status = await cli("train", "status", job, "--json", *transport)
    assert status.code == 0, status.err
    view = status.json()
    assert (view["state"], view["version"], view["backend"]) == ("succeeded", 1, "process")
    shown = await cli("train", "status", job, *transport)
    assert "state:     succeeded" in shown.out.splitlines()

    logs = await cli("train", "logs", job, *transport)
    assert logs.code == 0 and logs.out.splitlines() == log
    listed = await cli("train", "list", *transport)
    assert listed.out.splitlines()[0].split() == [
        "JOB",
        "MODEL",
        "STATE",
        "VERSION",
        "SUBMITTED",
        "REASON",
    ]
    assert listed.out.splitlines()[1].split()[:4] == [job, "flowers", "succeeded", "1"]

    finished = await cli("train", "cancel", job, *transport)
    assert finished.code == 4 and "already finished" in finished.err
    unknown = await cli("train", "status", "0123456789abcdef0123", *transport)
    assert unknown.code == 3, unknown.err


@pytest.mark.processes
async def test_a_failed_job_exits_6_and_a_cancelled_one_7(
    cli: Any,
    rest: list[str],
    start_trainer: Any,  # noqa: F811
    job_files: Any,
) -> None:
    await start_trainer(backend="process")
    failed = await cli("train", "submit", "broken", *job_files(FAILING), "--follow", *rest)
    assert failed.code == 6, failed.err
    assert "the data is bad" in failed.out
    assert "failed: the script exited with code 1" in failed.out.splitlines()[-1]

    submitted = await cli("train", "sleepy", *job_files(SLEEPING), "--json", *rest)
    assert submitted.code == 0, submitted.err
    job = submitted.json()["job"]
    for _ in range(300):
        if (await cli("train", "status", job, "--json", *rest)).json()["state"] == "running":
            break
        await asyncio.sleep(0.1)
    cancelled = await cli("train", "cancel", job, *rest)
    assert cancelled.code == 0, cancelled.err
    followed = await cli("train", "logs", job, "--follow", "--json", *rest)
    assert followed.code == 7, followed.err
    assert followed.json()["state"] == "cancelled"


async def test_bad_command_lines_send_nothing(cli: Any, nats: list[str], job_files: Any) -> None:
    files = job_files()
    missing = await cli("train", "flowers", *files[:-1], "nosuch.csv", *nats)
    assert missing.code == 2 and "--dataset nosuch.csv: no such file" in missing.err
    bad = await cli("train", "status", "../x", *nats)
    assert bad.code == 2 and "invalid job id" in bad.err
    none = await cli("train", "flowers", *files, *nats)
    assert none.code == 5 and "no trainer" in none.err
