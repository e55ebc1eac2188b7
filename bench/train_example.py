"""Wall time of the example training job (scikit-learn on iris.csv -> skl2onnx), per backend.

    python -m bench.train_example --backend process [--fresh] [--runs 2]
    python -m bench.train_example --backend docker --image mlbuffet-trainer-test:<key> [--fresh]

Starts a nats-server on an ephemeral loopback port and one trainer in this
process, then submits the example job (examples/iris) `--runs` times and
prints the time from submission to `succeeded` for each. The first run
builds the requirements' virtualenv (`--fresh`: in an empty cache, and
for docker after removing the cached venv volume); later runs find it
cached.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import subprocess
import tempfile
import time
from pathlib import Path

from actors.trainer.__main__ import make_backend
from actors.trainer.backend import requirements_key
from actors.trainer.config import DockerConfig, TrainerConfig, default_cache_dir
from actors.trainer.service import TrainerService
from mlbuffet.config import NatsConfig
from mlbuffet.mesh.connection import close_quietly, connect
from mlbuffet.natsd.server import NatsServer, NatsServerConfig
from mlbuffet.protocol.jobs import TrainJob
from mlbuffet.training import JobStore, new_job_id, submit_job
from tests.trainer.example_job import REQUIREMENTS, TRAIN_SCRIPT, write_iris_csv

FINISHED = ("succeeded", "failed", "cancelled")


def write_inputs(folder: Path) -> dict[str, Path]:
    files = {
        "train.py": folder / "train.py",
        "requirements.txt": folder / "requirements.txt",
        "iris.csv": folder / "iris.csv",
    }
    files["train.py"].write_text(TRAIN_SCRIPT)
    files["requirements.txt"].write_text(REQUIREMENTS)
    write_iris_csv(files["iris.csv"])
    return files


async def run(args: argparse.Namespace) -> None:
    with tempfile.TemporaryDirectory(prefix="mlbuffet-bench-") as tmp:
        folder = Path(tmp)
        cache = folder / "cache" if args.fresh else default_cache_dir()
        if args.fresh and args.backend == "docker":
            volume = f"mlbuffet-venv-{requirements_key(REQUIREMENTS.encode(), args.image)}"
            subprocess.run(
                ["docker", "volume", "rm", "-f", volume], check=False, capture_output=True
            )
        server = NatsServer(NatsServerConfig(data_dir=folder / "nats", port=0))
        await server.start()
        assert server.url is not None
        nats = NatsConfig(urls=(server.url,))
        config = TrainerConfig(
            nats=nats,
            backend=args.backend,
            cache_dir=cache,
            work_dir=folder,
            docker=DockerConfig(image=args.image, install_network=args.install_network),
        )
        trainer_nc = await connect(nats, name="bench-trainer")
        trainer = TrainerService(
            trainer_nc, config, "bench-trainer", make_backend(config, os.environ)
        )
        await trainer.start()
        nc = await connect(nats, name="bench")
        jobs = await JobStore.open(nc.jetstream())
        files = write_inputs(folder)
        try:
            for n in range(1, args.runs + 1):
                spec = TrainJob(
                    job=new_job_id(),
                    model="iris_bench",
                    script="train.py",
                    requirements="requirements.txt",
                    data=("iris.csv",),
                )
                started = time.perf_counter()
                await submit_job(nc, jobs, spec, files)
                while (record := await jobs.get(spec.job)).state.value not in FINISHED:
                    await asyncio.sleep(0.05)
                elapsed = time.perf_counter() - started
                what = "first (builds the venv)" if n == 1 and args.fresh else "cached venv"
                print(
                    f"{args.backend} run {n} ({what}): {record.state.value} "
                    f"version {record.version} in {elapsed:.1f} s"
                )
        finally:
            await trainer.drain(5)
            await close_quietly(trainer_nc)
            await close_quietly(nc)
            await server.stop()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--backend", choices=("process", "docker"), default="process")
    parser.add_argument("--image", default="python:3.12-slim")
    parser.add_argument("--install-network", default="bridge")
    parser.add_argument("--fresh", action="store_true", help="start with no cached venv")
    parser.add_argument("--runs", type=int, default=2)
    asyncio.run(run(parser.parse_args()))


if __name__ == "__main__":
    main()
