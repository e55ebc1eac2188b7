"""A modelhost that is stuck, not dead, under load: it gets out of the way, then comes back.

Two modelhosts serve a slow model (about 8 ms a request, one onnxruntime thread each) to
callers using mlbuffet.Client over NATS. A stuck host stays subscribed, so NATS keeps
handing it its share of requests until something takes it out of the queue group:

- wedged: its only onnxruntime thread hangs (the runs queued behind it never start, as
  behind a hung kernel); its event loop still runs, so it notices (stall.py), leaves the
  queue group and says why it is not ready; once a run finishes it rejoins.
- stopped: a real modelhost process gets SIGSTOP and runs no code; nats-server drops it
  after unanswered PINGs (mlbuffet/natsd/server.py); after SIGCONT it reconnects and serves again.

What NATS routes to whom is read from nats-server's own monitoring (/connz), so "out of the
queue group" is the server's view, not the host's. Every request sent after the detection
time must succeed; `pytest -s` prints the figures.
"""

from __future__ import annotations

import asyncio
import re
import signal
import threading
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from actors.modelhost.readiness import unready_reason
from mlbuffet.client import Client
from mlbuffet.natsd.server import MAX_PINGS_OUT, PING_INTERVAL_S, NatsServer, NatsServerConfig
from mlbuffet.protocol import subjects
from tests.conftest import eventually
from tests.faults.conftest import LoadResult, SpawnModelhost, bounded_load, slow_input

pytestmark = pytest.mark.processes

CALLERS = 8
STUCK_AFTER_S = 1.0
"""Load runs this long with both hosts healthy first."""
STOPPED_FOR_S = 6.0
"""How long the SIGSTOPped host stays stopped: well past its detection."""
DROP_BOUND_S = (MAX_PINGS_OUT + 2) * PING_INTERVAL_S
"""When nats-server has dropped a stopped client at the latest: its PINGs go out on a timer
(the first tick may be skipped if the client sent data within the interval), and it closes the
connection at the tick after MAX_PINGS_OUT unanswered ones."""
SLOW_S = 0.25
"""The hedge floor: a request that took this long most likely had a copy on a stuck host."""
SLOW_SHARE_ALLOWED = 0.05
"""Requests sent after detection that may still be that slow (a loaded machine); while a stuck
host is in the queue group about half of them are."""

_MONITOR = re.compile(r"Starting http monitor on (\S+:\d+)")


class MonitoredNatsServer(NatsServer):
    """The suite's nats-server (natsd/server.py's defaults), its monitoring port on loopback."""

    def __init__(self, data_dir: Path) -> None:
        self.lines: list[str] = []
        config = NatsServerConfig(data_dir=data_dir, port=0, extra='http: "127.0.0.1:-1"\n')
        super().__init__(config, on_log=self.lines.append)

    @property
    def monitor_url(self) -> str:
        found = [m.group(1) for line in self.lines if (m := _MONITOR.search(line))]
        assert found, self.lines
        return f"http://{found[0]}"

    async def connections(self) -> list[dict[str, Any]]:
        """Its client connections with their subscriptions (GET /connz?subs=1)."""
        url = f"{self.monitor_url}/connz?subs=1"
        async with aiohttp.ClientSession() as session, session.get(url) as response:
            return list((await response.json())["connections"])

    async def infer_subjects_of(self, **match: object) -> set[str] | None:
        """Inference subjects routed to the connection matching `match`; None if it has none."""
        for connection in await self.connections():
            if all(connection.get(key) == value for key, value in match.items()):
                listed = connection.get("subscriptions_list", [])
                return {s for s in listed if s.startswith("mlbuffet.infer.")}
        return None


@pytest.fixture
async def nats_server(tmp_path: Path) -> AsyncIterator[MonitoredNatsServer]:
    async with MonitoredNatsServer(tmp_path / "nats") as server:
        yield server


def slow_share(outcomes: list[Any]) -> float:
    return sum(o.latency_s >= SLOW_S for o in outcomes) / max(1, len(outcomes))


def report(
    what: str, result: LoadResult, counts: dict[str, int], detected_s: float, after: list[Any]
) -> None:
    failed_after = sum(o.node is None for o in after)
    print(
        f"\n{what}: detected {detected_s:.2f} s after it stuck; {result.line()}; "
        f"sent after detection: {len(after)}, {failed_after} failed, "
        f"{slow_share(after):.1%} took >= {SLOW_S} s, max latency "
        f"{max((o.latency_s for o in after), default=0) * 1000:.0f} ms; hedging {counts}"
    )


async def test_a_wedged_modelhost_leaves_the_queue_group_and_rejoins_once_a_run_finishes(
    upload, slow_model, start_modelhost, nats_server
):
    await upload("slow", slow_model)
    wedged = await start_modelhost(workers=1)
    other = await start_modelhost(workers=1)
    client = await Client.connect(nats_server.url, timeout=10)
    release = threading.Event()
    moments: dict[str, float] = {}
    limits: dict[str, float] = {}

    async def infer() -> str:
        return (await client.infer("slow", {"x": slow_input()})).node

    async def subscribed() -> bool:
        return bool(await nats_server.infer_subjects_of(cid=wedged.nc.client_id))

    async def wedge_then_free() -> None:
        await asyncio.sleep(STUCK_AFTER_S)
        assert await subscribed()
        wedged.models._compute.submit(release.wait)  # its only onnxruntime thread hangs from now
        moments["stuck"] = time.monotonic()
        await eventually(lambda: wedged.stall.stalled, timeout_s=10)
        moments["stalled"] = time.monotonic()
        limits["at stall"] = wedged.stall.limit_s
        assert unready_reason(wedged).startswith("stalled: "), unready_reason(wedged)
        assert wedged.heartbeat_load().counters["stalled"] == 1
        await eventually(lambda: not wedged._membership.locked(), timeout_s=5)
        assert not await subscribed()  # the server routes it nothing
        moments["out"] = time.monotonic()
        await asyncio.sleep(3.0)
        release.set()
        moments["freed"] = time.monotonic()
        await eventually(subscribed, timeout_s=10)
        assert unready_reason(wedged) is None
        assert wedged.heartbeat_load().counters["stalled"] == 0
        moments["back"] = time.monotonic()

    try:
        result = await bounded_load(infer, CALLERS, wedge_then_free, after_s=2.0)
    finally:
        release.set()
        await client.close()
    detected_s = moments["out"] - moments["stuck"]
    after = [o for o in result.sent_after(moments["out"]) if o.started < moments["freed"]]
    report("wedged onnxruntime thread", result, client.hedging.counts.as_dict(), detected_s, after)
    before = [o for o in result.sent_after(moments["stuck"]) if o.started < moments["out"]]
    print(
        f"sent while it was stuck and subscribed: {len(before)}, "
        f"{sum(o.node is None for o in before)} failed; "
        f"stalled after {moments['stalled'] - moments['stuck']:.2f} s (limit "
        f"{limits['at stall']:.1f} s), out of the queue group {detected_s:.2f} s after the "
        f"wedge; back {moments['back'] - moments['freed']:.2f} s after it was freed"
    )
    assert [o for o in result.sent_after(moments["out"]) if o.node is None] == []
    assert len(after) > 50 and slow_share(after) <= SLOW_SHARE_ALLOWED
    assert detected_s < limits["at stall"] + 2.0
    assert wedged.stall.limit_s <= limits["at stall"]  # the hung runs did not raise it
    assert wedged.stall.stalls == 1
    # Back in the group, it serves again.
    back = result.sent_after(moments["back"])
    assert {o.node for o in back} == {wedged.node_id, other.node_id}


async def test_a_sigstopped_modelhost_is_dropped_by_nats_and_serves_again_after_sigcont(
    upload, slow_model, spawn_modelhost: SpawnModelhost, nats_server
):
    await upload("slow", slow_model)
    victim, other = await asyncio.gather(
        spawn_modelhost("modelhost-stopped"), spawn_modelhost("modelhost-b")
    )
    client = await Client.connect(nats_server.url, timeout=10)
    moments: dict[str, float] = {}

    async def infer() -> str:
        return (await client.infer("slow", {"x": slow_input()})).node

    async def victim_subjects() -> set[str] | None:
        return await nats_server.infer_subjects_of(name=victim.node_id)

    async def stop_then_continue() -> None:
        await asyncio.sleep(STUCK_AFTER_S)
        assert subjects.infer("slow") in (await victim_subjects() or set())
        victim.process.send_signal(signal.SIGSTOP)
        moments["stuck"] = time.monotonic()
        await eventually(lambda: _is_none(victim_subjects()), timeout_s=DROP_BOUND_S + 10)
        moments["out"] = time.monotonic()
        await asyncio.sleep(STOPPED_FOR_S - (moments["out"] - moments["stuck"]))
        victim.process.send_signal(signal.SIGCONT)
        moments["continued"] = time.monotonic()
        await eventually(lambda: _contains(victim_subjects(), subjects.infer("slow")), timeout_s=15)
        moments["back"] = time.monotonic()

    try:
        result = await bounded_load(infer, CALLERS, stop_then_continue, after_s=3.0)
    finally:
        if victim.process.returncode is None:
            victim.process.send_signal(signal.SIGCONT)
        await client.close()
    detected_s = moments["out"] - moments["stuck"]
    after = [o for o in result.sent_after(moments["out"]) if o.started < moments["continued"]]
    report(
        "SIGSTOPped modelhost process", result, client.hedging.counts.as_dict(), detected_s, after
    )
    before = [o for o in result.sent_after(moments["stuck"]) if o.started < moments["out"]]
    print(
        f"dropped by nats-server {detected_s:.2f} s after SIGSTOP (bound {DROP_BOUND_S:.1f} s); "
        f"sent while it was stuck and subscribed: {len(before)}, "
        f"{sum(o.node is None for o in before)} failed; resubscribed "
        f"{moments['back'] - moments['continued']:.2f} s after SIGCONT"
    )
    assert [o for o in result.sent_after(moments["out"]) if o.node is None] == []
    assert detected_s <= DROP_BOUND_S + 0.5  # the poll's own lag on a loaded machine
    assert len(after) > 50 and slow_share(after) <= SLOW_SHARE_ALLOWED
    back = result.sent_after(moments["back"])
    assert {o.node for o in back} == {victim.node_id, other.node_id}
    assert victim.process.returncode is None  # it was stuck, never dead


async def _is_none(value: Any) -> bool:
    return (await value) is None


async def _contains(value: Any, item: str) -> bool:
    found = await value
    return found is not None and item in found
