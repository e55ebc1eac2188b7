"""SIGKILL of one modelhost under `mlbuffet up` while requests keep flowing through the gateway."""

from __future__ import annotations

import os
import re
import signal
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

import pytest

from tests.cli.conftest import StartUp, Up, alive
from tests.cli.rest import call, ok

pytestmark = pytest.mark.processes

CLIENTS = 4
CLIENT_TIMEOUT_S = 2.0
TRAFFIC_CAP_S = 40.0
"""Hard stop of the traffic, whatever happens."""
INTEREST_GONE_S = 0.3
"""After a SIGKILL, time for nats-server to see the dead host's socket closed."""
RESTART_BOUND_S = 20.0


@dataclass(frozen=True)
class Result:
    started: float
    ok: bool
    node: str | None


def send_until(stop: threading.Event, rest: str, count: int | None = None) -> list[Result]:
    """Predictions one after another until `stop` (or `count` requests, or the traffic cap)."""
    results: list[Result] = []
    deadline = time.monotonic() + TRAFFIC_CAP_S
    while not stop.is_set() and time.monotonic() < deadline and len(results) != count:
        started = time.monotonic()
        try:
            status, body = call(
                "POST",
                f"{rest}/api/v1/models/iris/prediction",
                {"values": [2, 5, 1, 4]},
                timeout_s=CLIENT_TIMEOUT_S,
            )
            good = status == 200 and body["values"] == [1]
            results.append(Result(started, good, body.get("node") if good else None))
        except OSError:  # a request that was with the killed host times out
            results.append(Result(started, False, None))
    return results


def node_of(out: str, child: str) -> str:
    nodes = re.findall(rf"^\[{re.escape(child)}\] modelhost (\S+) ready", out, re.MULTILINE)
    assert nodes, out
    return str(nodes[-1])


def probe_until_back(up: Up) -> list[Result]:
    """Sequential requests from a fresh client until `up` says modelhost-1 is back."""
    results: list[Result] = []
    deadline = time.monotonic() + RESTART_BOUND_S
    while "[up] modelhost-1 is back" not in up.out():
        assert time.monotonic() < deadline, f"modelhost-1 not restarted\n{up.out()}"
        results.extend(send_until(threading.Event(), up.rest, count=1))
    return results


def test_a_killed_modelhost_is_restarted_while_the_other_keeps_serving(start_up: StartUp) -> None:
    # Requests lost with the killed host keep a gateway handler waiting for their deadline;
    # a short drain timeout keeps the teardown (SIGTERM) from waiting 10 s for them.
    up = start_up("--modelhosts", "2", "--drain-timeout", "2")
    victim_pid, victim_node = up.pid_of("modelhost-1"), node_of(up.out(), "modelhost-1")
    survivor_node = node_of(up.out(), "modelhost-2")
    stop = threading.Event()
    with ThreadPoolExecutor(CLIENTS) as pool:
        clients = [pool.submit(send_until, stop, up.rest) for _ in range(CLIENTS)]
        try:
            time.sleep(1.0)
            killed_at = time.monotonic()
            os.kill(victim_pid, signal.SIGKILL)
            # Once NATS has dropped the dead host's interest (at once: the kernel closes its
            # socket), every new request goes to the survivor until the new host subscribes.
            time.sleep(INTEREST_GONE_S)
            probe = probe_until_back(up)
            back_at = time.monotonic()
            # Clients whose request was with the killed host wait out their timeout first.
            time.sleep(max(0.0, killed_at + CLIENT_TIMEOUT_S - back_at) + 1.5)
        finally:
            stop.set()
        results = [r for c in clients for r in c.result()]

    assert not alive(victim_pid)
    assert up.process.poll() is None
    assert up.pid_of("modelhost-1") != victim_pid
    fresh_node = node_of(up.out(), "modelhost-1")
    assert fresh_node != victim_node
    before = [r for r in results if r.started < killed_at]
    after = [r for r in results if r.started >= back_at]
    failed = [r for r in results if not r.ok]
    print(
        f"\n{len(results)} requests from {CLIENTS} clients: {len(before)} before the kill, "
        f"{len(after)} after the restart ({back_at - killed_at:.1f}s later), {len(failed)} failed; "
        f"{len(probe)} probe requests while modelhost-1 was down"
    )
    assert {r.node for r in before if r.ok} == {victim_node, survivor_node}
    # The survivor kept serving while the victim was down.
    assert probe and all(r.ok for r in probe)
    assert survivor_node in {r.node for r in probe}
    assert {r.node for r in probe} <= {survivor_node, fresh_node}
    # Requests handed to the killed host get no answer: the gateway hedges them to the other.
    assert failed == []
    assert {r.node for r in after if r.ok} == {fresh_node, survivor_node}
    echoed = ok("POST", f"{up.rest}/api/test/sendtomodelhost", {"data": list(range(40))})
    assert {item["node"] for item in echoed["results"]} == {fresh_node, survivor_node}
