"""`mlbuffet nats`: the embedded nats-server alone, with JetStream, stopped by a signal."""

from __future__ import annotations

import asyncio
import re
import signal
from pathlib import Path

import pytest
from nats.aio.msg import Msg

from mlbuffet.config import NatsConfig
from mlbuffet.mesh.connection import close_quietly, connect
from tests.cli.conftest import Spawn, command_of, wait_gone

pytestmark = pytest.mark.processes

LISTENING = re.compile(r"^nats-server listening on (nats://\S+) \(JetStream data in (.+)\)$", re.M)


async def round_trip(url: str) -> tuple[bytes, bool]:
    """A request answered through the server, and whether JetStream is on."""
    nc = await connect(NatsConfig(urls=(url,)), name="test")

    async def echo(msg: Msg) -> None:
        await msg.respond(msg.data)

    try:
        sub = await nc.subscribe("test.echo", cb=echo)
        reply = await nc.request("test.echo", b"hello", timeout=5)
        await sub.unsubscribe()
        info = await nc.jetstream().account_info()
        return reply.data, info.limits is not None
    finally:
        await close_quietly(nc)


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT])
def test_nats_alone_serves_with_jetstream_and_stops_on_a_signal(
    spawn: Spawn, tmp_path: Path, signum: signal.Signals
) -> None:
    data = tmp_path / "nats-data"
    proc = spawn("nats", "--nats-port", "0", "--data-dir", str(data))
    match = proc.wait_for_output(LISTENING, 20)
    url = match.group(1)
    assert url.startswith("nats://127.0.0.1:") and not url.endswith(":0")
    assert Path(match.group(2)) == data
    assert asyncio.run(round_trip(url)) == (b"hello", True)
    (server,) = proc.descendants()
    assert "nats-server" in command_of(server)
    assert (data / "jetstream").is_dir()
    proc.signal(signum)
    assert proc.wait(20) == 0
    wait_gone({server}, 5, "nats-server after mlbuffet nats stopped")
    assert "Traceback" not in proc.err()


def test_nats_port_in_use_is_a_one_line_error(spawn: Spawn, tmp_path: Path) -> None:
    first = spawn("nats", "--nats-port", "0", "--data-dir", str(tmp_path / "a"))
    port = first.wait_for_output(LISTENING, 20).group(1).rsplit(":", 1)[1]
    second = spawn("nats", "--nats-port", port, "--data-dir", str(tmp_path / "b"))
    assert second.wait(20) == 1
    assert second.err().strip() == (
        f"mlbuffet: port {port} on 127.0.0.1 is already in use (NATS client port); "
        "stop what uses it or choose another port"
    )


def test_sigkill_of_mlbuffet_nats_takes_the_server_with_it(spawn: Spawn, tmp_path: Path) -> None:
    proc = spawn("nats", "--nats-port", "0", "--data-dir", str(tmp_path / "d"))
    proc.wait_for_output(LISTENING, 20)
    servers = proc.descendants()
    assert len(servers) == 1
    proc.signal(signal.SIGKILL)
    proc.wait(10)
    wait_gone(servers, 10, "nats-server of a SIGKILLed mlbuffet nats")
