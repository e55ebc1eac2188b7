"""The health listener of the modelhost and the trainer, for Kubernetes' probes.

Real parts: a real nats-server, the registry, a modelhost loading real ONNX models with
onnxruntime, and HTTP over loopback. Ready means: connected to NATS, running, and (for a
modelhost) serving every model it should; it flips back when NATS goes away.
"""

from __future__ import annotations

import asyncio
import contextlib
import re
import sys
from collections.abc import AsyncIterator
from pathlib import Path

import aiohttp
import pytest

from actors.modelhost.config import ModelhostConfig
from actors.modelhost.readiness import unready_reason
from actors.modelhost.service import ModelhostService
from actors.probe import ActorProbe
from actors.trainer.__main__ import parse_args as trainer_args
from mlbuffet.config import ConfigError, NatsConfig
from mlbuffet.mesh.connection import close_quietly, connect
from mlbuffet.natsd.server import NatsServer
from mlbuffet.protocol.records import ModelRecord
from mlbuffet.roles.health_listener import HealthConfig, HealthServer
from tests.conftest import eventually

REPO = Path(__file__).resolve().parents[2]
START_TIMEOUT_S = 30


async def get(session: aiohttp.ClientSession, url: str) -> tuple[int, str]:
    async with session.get(url, timeout=aiohttp.ClientTimeout(total=5)) as response:
        return response.status, await response.text()


@pytest.fixture
async def session() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession() as client:
        yield client


async def test_modelhost_is_ready_once_it_serves_its_models_and_not_without_nats(
    nats_server: NatsServer, nats_config: NatsConfig, upload, model_files, session
):
    await upload("adder", model_files.add_one)
    probe = ActorProbe[ModelhostService](unready_reason)
    server = HealthServer(HealthConfig(port=0), probe.unready_reason)
    port = await server.start()
    base = f"http://127.0.0.1:{port}"
    nc = await connect(nats_config, name="health-test-modelhost")
    try:
        assert await get(session, base + "/health/live") == (200, "live\n")
        assert await get(session, base + "/health/ready") == (
            503,
            "not ready: connecting to NATS\n",
        )
        host = probe.watch(ModelhostService(nc, ModelhostConfig(nats=nats_config), "mh-health"))
        status, text = await get(session, base + "/health/ready")
        assert (status, "starting or draining" in text) == (503, True)
        await host.start()  # returns once the models it found are loaded
        assert await get(session, base + "/health/ready") == (200, "ready\n")

        # A new model: the moment the host's view has it, before the load, it is not ready.
        seen: list[str | None] = []

        def on_change(name: str, record: ModelRecord | None) -> None:
            if name == "slow":
                seen.append(probe.unready_reason())

        assert host.view is not None
        host.view.add_listener(on_change)
        await upload("slow", model_files.slow_load)
        await eventually(lambda: bool(seen))
        assert seen[0] == "models not loaded yet: slow"

        async def ready() -> bool:
            return (await get(session, base + "/health/ready"))[0] == 200

        await eventually(ready, timeout_s=20)
        assert set(host.served) == {"adder", "slow"}

        # NATS goes away: not ready (nothing can reach the host), but still live.
        await nats_server.stop()

        async def unready() -> bool:
            return await get(session, base + "/health/ready") == (
                503,
                "not ready: no NATS connection (reconnecting)\n",
            )

        await eventually(unready, timeout_s=10)
        assert (await get(session, base + "/health/live"))[0] == 200
        await host.stop()
    finally:
        await server.stop()
        await close_quietly(nc)


async def test_a_modelhost_limited_to_some_models_ignores_the_others(
    nats_config: NatsConfig, upload, model_files, start_modelhost
):
    await upload("adder", model_files.add_one)
    host = await start_modelhost(models=("other",))
    probe = ActorProbe[ModelhostService](unready_reason)
    probe.watch(host)
    assert probe.unready_reason() is None


@pytest.mark.processes
async def test_a_modelhost_process_serves_its_health_on_the_port_of_its_environment(
    nats_server: NatsServer, upload, model_files, session, tmp_path: Path
):
    """MLBUFFET_HEALTH_PORT as the Kubernetes manifests set it (0 here: the port is announced)."""
    await upload("adder", model_files.add_one)
    log = (tmp_path / "modelhost.log").open("wb")
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "mlbuffet", "modelhost", "--workers", "1",
        cwd=REPO, stdin=asyncio.subprocess.DEVNULL, stdout=asyncio.subprocess.PIPE, stderr=log,
        env={"PATH": "/usr/bin:/bin", "MLBUFFET_NATS": str(nats_server.url),
             "MLBUFFET_NODE_ID": "mh-env", "MLBUFFET_HEALTH_PORT": "0",
             "MLBUFFET_HEALTH_HOST": "127.0.0.1"},
    )  # fmt: skip
    log.close()
    try:
        assert process.stdout is not None
        line = (await asyncio.wait_for(process.stdout.readline(), START_TIMEOUT_S)).decode()
        found = re.fullmatch(
            r"modelhost mh-env health on (http://127\.0\.0\.1:\d+)/health/ready\n", line
        )
        assert found, line
        ready_line = (await asyncio.wait_for(process.stdout.readline(), START_TIMEOUT_S)).decode()
        assert ready_line.startswith("modelhost mh-env ready, serving adder:1"), ready_line
        assert await get(session, found.group(1) + "/health/ready") == (200, "ready\n")
        assert await get(session, found.group(1) + "/health/live") == (200, "live\n")
    finally:
        with contextlib.suppress(ProcessLookupError):
            process.terminate()
        assert await asyncio.wait_for(process.wait(), 20) == 0


async def test_trainer_is_ready_when_running_with_nats(nats_config: NatsConfig, session, tmp_path):
    """The trainer's probe: the same listener, the generic actor readiness."""
    from actors.trainer.__main__ import make_backend
    from actors.trainer.service import TrainerService

    environ = {"MLBUFFET_HEALTH_PORT": "0", "MLBUFFET_TRAINER_CACHE_DIR": str(tmp_path / "venvs")}
    config, _ = trainer_args(["--nats", nats_config.urls[0]], environ)
    assert config.health == HealthConfig(host="127.0.0.1", port=0)
    probe = ActorProbe[TrainerService]()
    server = HealthServer(config.health, probe.unready_reason)
    port = await server.start()
    nc = await connect(nats_config, name="health-test-trainer")
    try:
        trainer = probe.watch(
            TrainerService(nc, config, "tr-health", make_backend(config, environ))
        )
        assert (await get(session, f"http://127.0.0.1:{port}/health/ready"))[0] == 503
        await trainer.start()
        assert await get(session, f"http://127.0.0.1:{port}/health/ready") == (200, "ready\n")
        await trainer.drain(5)
        assert (await get(session, f"http://127.0.0.1:{port}/health/ready"))[0] == 503
    finally:
        await server.stop()
        await close_quietly(nc)


def test_a_bad_health_port_is_refused_with_the_setting_named():
    with pytest.raises(ConfigError, match="--health-port 70000"):
        HealthConfig(port=70000)
    with pytest.raises(ConfigError, match="MLBUFFET_HEALTH_PORT='x'"):
        trainer_args([], {"MLBUFFET_HEALTH_PORT": "x"})


async def test_a_taken_health_port_stops_the_start_with_a_clear_error():
    first = HealthServer(HealthConfig(port=0), lambda: None)
    port = await first.start()
    try:
        from mlbuffet.roles.runner import StartupError

        with pytest.raises(StartupError, match=f"127.0.0.1:{port} is already in use"):
            await HealthServer(HealthConfig(port=port), lambda: None).start()
    finally:
        await first.stop()
