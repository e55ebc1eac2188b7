"""Fixtures for fault tests: modelhost processes, an in-process gateway, bounded load."""

from __future__ import annotations

import asyncio
import time
from collections import Counter
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from aiohttp.test_utils import TestClient

from gateway.app import create_app
from gateway.config import GatewayConfig
from mlbuffet.config import NatsConfig
from mlbuffet.natsd.server import NatsServer
from tests import onnx_models
from tests.modelhost_processes import ModelhostProcess, start_modelhost_process

SpawnModelhost = Callable[..., Awaitable[ModelhostProcess]]

WIDTH = 64
DEPTH = 3000
"""3000 small matrix products: about 8 ms of onnxruntime for a 64-float request, so with
16 callers and one worker per host every host has a queue when it is killed."""


def slow_input() -> np.ndarray:
    return np.full((1, WIDTH), 0.01, dtype=np.float32)


@pytest.fixture(scope="session")
def slow_model(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return onnx_models.matmul_chain(
        tmp_path_factory.mktemp("faults") / "slow.onnx", width=WIDTH, depth=DEPTH
    )


@pytest.fixture
async def spawn_modelhost(nats_server: NatsServer, tmp_path: Path) -> AsyncIterator[SpawnModelhost]:
    started: list[ModelhostProcess] = []

    async def start(node_id: str, *options: str) -> ModelhostProcess:
        assert nats_server.url is not None
        host = await start_modelhost_process(nats_server.url, node_id, tmp_path, *options)
        started.append(host)
        return host

    yield start
    await asyncio.gather(*(host.stop() for host in started))


@pytest.fixture
async def rest_gateway(
    nats_config: NatsConfig, aiohttp_client: Any, tmp_path: Path
) -> TestClient[Any, Any]:
    """The real gateway app on the test's NATS, hedging with its defaults."""
    config = GatewayConfig(nats=nats_config, port=0, tmp_dir=tmp_path, request_timeout_s=10)
    client: TestClient[Any, Any] = await aiohttp_client(create_app(config))
    return client


@dataclass(frozen=True, slots=True)
class Outcome:
    """One request of a load: when it was sent (time.monotonic()), how long it took, who answered."""

    started: float
    latency_s: float
    node: str | None
    """None if it failed."""


@dataclass
class LoadResult:
    sent: int = 0
    failed: list[str] = field(default_factory=list)
    answered_by: Counter[str] = field(default_factory=Counter)
    max_latency_s: float = 0.0
    outcomes: list[Outcome] = field(default_factory=list)

    def sent_after(self, moment: float) -> list[Outcome]:
        """The requests sent at or after `moment` (time.monotonic())."""
        return [outcome for outcome in self.outcomes if outcome.started >= moment]

    def line(self) -> str:
        return (
            f"{self.sent} requests sent, {len(self.failed)} failed, "
            f"max latency {self.max_latency_s * 1000:.0f} ms, answers by host "
            f"{dict(self.answered_by)}"
        )


Call = Callable[[], Awaitable[str]]
"""One request; returns the node that answered, raises on failure."""


LOAD_CAP_S = 40.0
"""Callers stop by then whatever happens."""


async def bounded_load(
    call: Call, callers: int, during: Callable[[], Awaitable[None]], after_s: float = 2.0
) -> LoadResult:
    """`callers` loops of `call` while `during` runs and `after_s` longer (at most LOAD_CAP_S)."""
    result = LoadResult()
    cap = time.monotonic() + LOAD_CAP_S
    stop = asyncio.Event()

    async def caller() -> None:
        while not stop.is_set() and time.monotonic() < cap:
            started = time.monotonic()
            result.sent += 1
            node: str | None = None
            try:
                node = await call()
                result.answered_by[node] += 1
            except Exception as exc:  # every failure is counted and shown, whatever its type
                result.failed.append(repr(exc))
            latency_s = time.monotonic() - started
            result.max_latency_s = max(result.max_latency_s, latency_s)
            result.outcomes.append(Outcome(started, latency_s, node))

    tasks = [asyncio.create_task(caller()) for _ in range(callers)]
    try:
        await during()
        await asyncio.sleep(after_s)
        stop.set()
        await asyncio.gather(*tasks)
    finally:
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
    return result
