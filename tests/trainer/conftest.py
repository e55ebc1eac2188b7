"""Trainer fixtures: real trainer actors on a real NATS, real venvs, a real Docker daemon.

The example job trains a scikit-learn classifier from a CSV and converts it
with skl2onnx. Its virtualenv is built once per machine and cached under
~/.cache/mlbuffet/trainer (MLBUFFET_TEST_TRAINER_CACHE to move it); the
docker backend's image is built once per machine by scripts/trainer-test-image.
"""

from __future__ import annotations

import asyncio
import os
import subprocess
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any

import pytest
from nats.aio.client import Client

from actors.trainer.__main__ import make_backend
from actors.trainer.config import DockerConfig, TrainerConfig, default_cache_dir
from actors.trainer.service import TrainerService
from mlbuffet.config import NatsConfig
from mlbuffet.mesh.connection import close_quietly, connect
from mlbuffet.protocol.jobs import JobRecord, TrainAccepted, TrainJob
from mlbuffet.training import JobStore, new_job_id, submit_job
from tests.gateway.conftest import gateway, make_gateway  # noqa: F401 - fixtures used here too
from tests.trainer.example_job import REQUIREMENTS, TRAIN_SCRIPT, write_iris_csv

REPO = Path(__file__).resolve().parents[2]
IMAGE_SCRIPT = REPO / "scripts" / "trainer-test-image"


def trainer_cache() -> Path:
    return Path(os.environ.get("MLBUFFET_TEST_TRAINER_CACHE") or default_cache_dir())


@pytest.fixture(scope="session")
def iris_csv(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_iris_csv(tmp_path_factory.mktemp("dataset") / "iris.csv")


@pytest.fixture(scope="session")
def docker_image() -> str:
    """The locally built base image (debootstrap + python3 + scikit-learn), built once per machine."""
    result = subprocess.run(
        [str(IMAGE_SCRIPT)], capture_output=True, text=True, timeout=1200, check=False
    )
    if result.returncode != 0:
        pytest.fail(f"building the trainer test image failed:\n{result.stderr[-3000:]}")
    return result.stdout.strip().splitlines()[-1]


StartTrainer = Callable[..., Awaitable[TrainerService]]


@pytest.fixture
async def start_trainer(nats_config: NatsConfig, tmp_path: Path) -> AsyncIterator[StartTrainer]:
    """Start trainer actors in this process, each with its own NATS connection."""
    started: list[tuple[TrainerService, Client]] = []

    async def start(node_id: str | None = None, **settings: Any) -> TrainerService:
        settings.setdefault("cache_dir", trainer_cache())
        settings.setdefault("work_dir", tmp_path)
        settings.setdefault("drain_timeout_s", 5.0)
        config = TrainerConfig(nats=nats_config, **settings)
        client = await connect(nats_config, name="test-trainer")
        node = node_id or f"trainer-{len(started) + 1}-{os.getpid()}"
        trainer = TrainerService(client, config, node, make_backend(config, os.environ))
        await trainer.start()
        started.append((trainer, client))
        return trainer

    yield start
    for trainer, client in started:
        await trainer.drain(5)
        await close_quietly(client)


@pytest.fixture
async def jobs(nc: Client) -> JobStore:
    return await JobStore.open(nc.jetstream())


Submit = Callable[..., Awaitable[TrainAccepted]]


@pytest.fixture
def submit(nc: Client, jobs: JobStore, tmp_path: Path, iris_csv: Path) -> Submit:
    """Submit a job over NATS as a client does; `script` is its source text."""

    async def send(
        model: str, script: str = TRAIN_SCRIPT, requirements: str = REQUIREMENTS, **spec: Any
    ) -> TrainAccepted:
        folder = tmp_path / f"submit-{time.monotonic_ns()}"
        folder.mkdir()
        (folder / "train.py").write_text(script)
        (folder / "requirements.txt").write_text(requirements)
        job = TrainJob(
            job=new_job_id(),
            model=model,
            script="train.py",
            requirements="requirements.txt",
            data=("iris.csv",),
            **spec,
        )
        files = {
            "train.py": folder / "train.py",
            "requirements.txt": folder / "requirements.txt",
            "iris.csv": iris_csv,
        }
        return await submit_job(nc, jobs, job, files)

    return send


async def wait_for_state(
    jobs: JobStore, job: str, states: set[str], timeout_s: float = 240.0
) -> JobRecord:
    """Poll the job's record until it is in one of `states`; fail the test after `timeout_s`."""
    deadline = time.monotonic() + timeout_s
    while True:
        record = await jobs.get(job)
        if record.state.value in states:
            return record
        if time.monotonic() > deadline:
            pytest.fail(f"job {job} still {record.state.value} after {timeout_s}s: {record}")
        await asyncio.sleep(0.1)


async def whole_log(jobs: JobStore, job: str) -> str:
    from mlbuffet.training import log_lines

    return "\n".join([line async for line in log_lines(jobs, job, follow=False)])


@pytest.fixture
def docker_settings(docker_image: str) -> dict[str, Any]:
    """Trainer settings for the docker backend against the local daemon and the test image."""
    return {
        "backend": "docker",
        "docker": DockerConfig(image=docker_image, install_network="none"),
        "memory_bytes": 2 * 1024**3,
    }
