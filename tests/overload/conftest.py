"""Overload fixtures: gateway and modelhost as real processes, RSS read from /proc, a slow model."""

from __future__ import annotations

import asyncio
import re
import sys
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pytest

from mlbuffet.natsd.server import NatsServer
from tests.gateway.conftest import make_gateway  # noqa: F401 (a fixture for these tests too)
from tests.modelhost_processes import ModelhostProcess
from tests.onnx_models import spin

REPO = Path(__file__).resolve().parents[2]
READY_TIMEOUT_S = 30.0
WIDTH = 256


class RoleProcess(ModelhostProcess):
    """One `python -m mlbuffet <role>` process, stopped with SIGTERM at teardown."""

    ready = ""
    """Its ready line."""

    @property
    def pid(self) -> int:
        return self.process.pid


StartRole = Callable[..., Awaitable[RoleProcess]]


@pytest.fixture
async def start_role(nats_server: NatsServer, tmp_path: Path) -> AsyncIterator[StartRole]:
    """Start `mlbuffet <role> --nats <url> <args>`; returns once it printed `ready`."""
    started: list[RoleProcess] = []

    async def start(role: str, *args: str, ready: str) -> RoleProcess:
        assert nats_server.url is not None
        log_path = tmp_path / f"{role}-{len(started)}.log"
        with log_path.open("wb") as log:
            process = await asyncio.create_subprocess_exec(
                sys.executable, "-m", "mlbuffet", role, "--nats", nats_server.url, *args,
                cwd=REPO, stdin=asyncio.subprocess.DEVNULL,
                stdout=asyncio.subprocess.PIPE, stderr=log,
            )  # fmt: skip
        role_process = RoleProcess(process, role, log_path)
        started.append(role_process)
        assert process.stdout is not None
        async with asyncio.timeout(READY_TIMEOUT_S):
            while ready not in role_process.ready:
                line = await process.stdout.readline()
                assert line, f"{role} exited before saying {ready!r}"
                role_process.ready = line.decode()
        # Nobody reads its stdout from here on: it prints nothing more unless asked.
        return role_process

    yield start
    for role_process in started:
        await role_process.stop()


def listening_url(ready_line: str) -> str:
    match = re.search(r"listening on (http://\S+)", ready_line)
    assert match, ready_line
    return match.group(1)


def rss_bytes(pid: int) -> int:
    """Resident memory of `pid` now (VmRSS of /proc/<pid>/status); 0 once it is gone."""
    try:
        status = Path(f"/proc/{pid}/status").read_text()
    except OSError:
        return 0
    match = re.search(r"^VmRSS:\s+(\d+) kB", status, re.MULTILINE)
    return int(match.group(1)) * 1024 if match else 0


@dataclass
class RssSampler:
    """Samples the RSS of some processes every `interval_s` while it runs."""

    pids: dict[str, int]
    interval_s: float = 0.05
    samples: list[tuple[float, dict[str, int]]] = field(default_factory=list)

    async def run(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            self.samples.append(
                (loop.time(), {name: rss_bytes(pid) for name, pid in self.pids.items()})
            )
            await asyncio.sleep(self.interval_s)

    def peaks(self, start: float, end: float) -> dict[str, int]:
        """The highest RSS of each process over [start, end)."""
        window = [rss for at, rss in self.samples if start <= at < end]
        assert window, "no RSS sample in the window"
        return {name: max(rss[name] for rss in window) for name in self.pids}


@pytest.fixture(scope="session")
def spin_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The slow model: work grows with `reps`, the answer is the input (see onnx_models.spin)."""
    return spin(tmp_path_factory.mktemp("spin") / "spin.onnx", width=WIDTH)


def spin_values(seed: int, reps: int) -> dict[str, list[list[float]] | list[int]]:
    """A prediction body's values for the spin model; the answer is `x` itself."""
    x = np.full((1, WIDTH), float(seed % 1000), dtype=np.float32)
    return {"x": x.tolist(), "reps": [reps, 1]}


SLOW_REPS = 15_000
"""Rows of a spin run that keeps a compute thread busy for a good while (about a second)."""


def spin_inputs(value: float = 1.0, reps: int = 64) -> dict[str, np.ndarray]:
    """The spin model's inputs for a request over NATS; the answer is `x`."""
    return {
        "x": np.full((1, WIDTH), value, dtype=np.float32),
        "reps": np.array([reps, 1], dtype=np.int64),
    }
