"""`mlbuffet up` restarts the gateway and nats-server where they were, and stops cleanly mid-start."""

from __future__ import annotations

import os
import re
import signal
import time
from pathlib import Path

import pytest

from tests.cli.conftest import Spawn, StartUp, alive, wait_gone, wait_until
from tests.cli.rest import call, predict

pytestmark = pytest.mark.processes


def answers_iris(rest: str) -> bool:
    try:
        status, body = call(
            "POST", f"{rest}/api/v1/models/iris/prediction", {"values": [2, 5, 1, 4]}, timeout_s=2
        )
    except OSError:
        return False
    return status == 200 and body["values"] == [1]


def test_a_killed_gateway_comes_back_on_the_same_port(start_up: StartUp) -> None:
    up = start_up("--modelhosts", "1")  # --port 0: the port is picked once, then kept
    gateway = up.pid_of("gateway")
    os.kill(gateway, signal.SIGKILL)
    wait_until(lambda: "[up] gateway is back" in up.out(), 20, "gateway restarted")
    assert up.pid_of("gateway") != gateway and not alive(gateway)
    wait_until(lambda: answers_iris(up.rest), 10, f"iris answers again at {up.rest}")
    listening = re.findall(r"^\[gateway\] gateway \S+ listening on (\S+)$", up.out(), re.M)
    assert listening == [up.rest, up.rest]


def test_a_killed_nats_server_comes_back_with_the_registry(start_up: StartUp) -> None:
    up = start_up("--modelhosts", "1")
    server = up.pid_of("nats")
    os.kill(server, signal.SIGKILL)
    wait_until(lambda: "[up] nats is back" in up.out(), 20, "nats-server restarted")
    assert not alive(server)
    # Same port, same JetStream data: every role reconnects and the models are all there.
    wait_until(lambda: answers_iris(up.rest), 20, "iris answers after the nats-server restart")
    assert predict(up.rest, "diabetes", [0.0] * 10)
    up.signal(signal.SIGTERM)
    assert up.wait() == 0


def test_a_signal_while_starting_stops_everything(spawn: Spawn, tmp_path: Path) -> None:
    up = spawn("up", "--port", "0", "--nats-port", "0", "--data-dir", str(tmp_path / "data"))
    # nats-server and a first role on their way: the roles need about a second to be ready.
    deadline = time.monotonic() + 20
    while len(up.descendants()) < 2:
        assert time.monotonic() < deadline and up.process.poll() is None, up.out()
        time.sleep(0.01)
    up.signal(signal.SIGINT)
    assert up.wait() == 0
    assert "MLBuffet is up" not in up.out()
    assert "[up] stopped while starting" in up.out()
    wait_gone(up.seen, 10, "children of an up stopped while starting")
    assert "Traceback" not in up.err()
