"""`mlbuffet status` and `mlbuffet events` against a real mesh started by `mlbuffet up`."""

from __future__ import annotations

import asyncio
import json
import re
import subprocess
import sys
import time

import pytest

from mlbuffet.observe.event_history import open_event_history
from mlbuffet.protocol.events import ModelEvent
from mlbuffet.protocol.wire import pack
from tests.cli.conftest import clean_environ
from tests.cli.rest import ok, predict

TIMEOUT_S = 30


def mlbuffet(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "mlbuffet", *args],
        capture_output=True,
        text=True,
        timeout=TIMEOUT_S,
        env=clean_environ(),
        check=False,
    )


@pytest.mark.processes
def test_status_and_events_against_a_running_up(start_up, spawn):
    up = start_up("--modelhosts", "1")
    for _ in range(3):
        assert predict(up.rest, "iris", [2, 5, 1, 4]) == [1]

    # Heartbeats come every 2 s (the default): the three predictions show within a few,
    # and so does every node (the metrics actor starts after the gateway and the
    # modelhosts, so it learns of them from their next heartbeat).
    expected_roles = ["gateway", "metrics", "modelhost", "trainer"]
    deadline = time.monotonic() + TIMEOUT_S
    while True:
        result = mlbuffet("status", "--nats", up.nats, "--json")
        assert result.returncode == 0, result.stderr
        status = json.loads(result.stdout)
        iris = [m for m in status["models"] if m["model"] == "iris"]
        roles = sorted(n["role"] for n in status["nodes"])
        if iris and iris[0]["success"] == 3 and roles == expected_roles:
            break
        assert time.monotonic() < deadline, status
        time.sleep(0.5)
    assert roles == expected_roles
    assert all(n["state"] == "up" for n in status["nodes"])

    table = mlbuffet("status", "--nats", up.nats)
    assert table.returncode == 0, table.stderr
    lines = table.stdout.splitlines()
    assert lines[0].split()[:3] == ["NODE", "ROLE", "STATE"]
    assert any(re.match(r"modelhost-\S+\s+modelhost\s+up\s", line) for line in lines), lines
    assert any(re.match(r"iris\s+1\s+modelhost-\S+\s+3\s+0\s", line) for line in lines), lines

    events = spawn("events", "--nats", up.nats, "--count", "1")
    deadline = time.monotonic() + TIMEOUT_S
    while "following mlbuffet.events.>" not in events.err():
        assert events.process.poll() is None, events.err()
        assert time.monotonic() < deadline, events.err()
        time.sleep(0.05)
    ok("POST", f"{up.rest}/api/v1/models/iris/default", {"default": 1})
    assert events.wait(TIMEOUT_S) == 0, events.err()
    assert re.fullmatch(
        r"\d\d:\d\d:\d\d model iris:1 default-changed by gateway-\S+\n", events.out()
    ), events.out()


async def test_status_without_a_metrics_actor_says_so(nats_server):
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "mlbuffet", "status", "--nats", nats_server.url,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE, env=clean_environ(),
    )  # fmt: skip
    out, err = await asyncio.wait_for(process.communicate(), TIMEOUT_S)
    assert process.returncode == 1
    assert err.decode().strip() == (
        "mlbuffet status: no metrics actor is running: start one "
        "(`mlbuffet metrics`; `mlbuffet up` does)"
    )
    assert out == b""


async def test_events_json_prints_one_object_per_line(nats_server, nc):
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "mlbuffet", "events", "--nats", nats_server.url,
        "--json", "--count", "2",
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE, env=clean_environ(),
    )  # fmt: skip
    assert process.stderr is not None
    line = await asyncio.wait_for(process.stderr.readline(), TIMEOUT_S)
    assert line.startswith(b"following"), line
    for version in (1, 2):
        event = ModelEvent("loaded", "m", version, "node-x", 1.5)
        await nc.publish("mlbuffet.events.model.m", pack(event))
    out, _ = await asyncio.wait_for(process.communicate(), TIMEOUT_S)
    assert process.returncode == 0
    lines = [json.loads(x) for x in out.decode().splitlines()]
    assert [(x["subject"], x["version"], x["event"]) for x in lines] == [
        ("mlbuffet.events.model.m", 1, "loaded"),
        ("mlbuffet.events.model.m", 2, "loaded"),
    ]


async def test_events_since_replays_what_happened_before_then_follows(nats_server, nc):
    await open_event_history(nc.jetstream(), None)
    for version in (1, 2, 3):
        await nc.publish(
            "mlbuffet.events.model.m", pack(ModelEvent("loaded", "m", version, "n", 1.5))
        )
    await nc.flush()
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "mlbuffet", "events", "--nats", nats_server.url,
        "--json", "--since", "2", "--count", "3",
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE, env=clean_environ(),
    )  # fmt: skip
    assert process.stdout is not None
    replayed = [json.loads(await asyncio.wait_for(process.stdout.readline(), TIMEOUT_S))]
    replayed.append(json.loads(await asyncio.wait_for(process.stdout.readline(), TIMEOUT_S)))
    # Versions 2 and 3 were kept from before the command; 4 happens while it follows.
    await nc.publish("mlbuffet.events.model.m", pack(ModelEvent("loaded", "m", 4, "n", 2.5)))
    out, err = await asyncio.wait_for(process.communicate(), TIMEOUT_S)
    assert process.returncode == 0, err
    lines = replayed + [json.loads(x) for x in out.decode().splitlines()]
    assert [(x["seq"], x["version"]) for x in lines] == [(2, 2), (3, 3), (4, 4)]
    assert {x["stream"] for x in lines} == {"mlbuffet_events"}


def test_events_since_a_bad_value_says_what_it_takes():
    result = mlbuffet("events", "--since", "yesterday")
    assert result.returncode == 2
    assert "sequence number (120) or a duration" in result.stderr
