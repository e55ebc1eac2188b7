"""A modelhost process killed with SIGKILL is reported down within 3 heartbeat intervals."""

from __future__ import annotations

import asyncio
import contextlib
import signal
import sys
import time
from pathlib import Path

import pytest

from mlbuffet.natsd.server import NatsServer
from mlbuffet.protocol import subjects
from mlbuffet.protocol.events import NodeEvent
from tests.observe.conftest import heartbeats, node_events

REPO = Path(__file__).resolve().parents[2]
HOST_INTERVAL_S = 0.3
DOWN_AFTER = 3
SLACK_S = 0.5
"""The sweep runs every 0.05 s here; the rest is two processes on a loaded 2-core machine."""


async def start_modelhost_process(nats_server: NatsServer, node_id: str, log: Path):
    with log.open("ab") as err:
        process = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "mlbuffet", "modelhost",
            "--nats", nats_server.url, "--node-id", node_id, "--workers", "1",
            "--heartbeat-interval", str(HOST_INTERVAL_S),
            cwd=REPO, stdin=asyncio.subprocess.DEVNULL,
            stdout=asyncio.subprocess.PIPE, stderr=err,
        )  # fmt: skip
    assert process.stdout is not None
    line = await asyncio.wait_for(process.stdout.readline(), 30)
    assert f"modelhost {node_id} ready" in line.decode(), (line, log.read_text())
    return process


@pytest.mark.processes
async def test_a_killed_modelhost_is_down_within_three_intervals_and_up_when_back(
    nats_server, nc, start_metrics, tmp_path
):
    await start_metrics(down_after=DOWN_AFTER, heartbeat_interval_s=0.2)
    events = await node_events(nc)
    node = "modelhost-doomed"
    beats = await heartbeats(nc, subjects.heartbeat("modelhost", node))
    process = await start_modelhost_process(nats_server, node, tmp_path / "host.log")
    try:
        await events.wait_for(lambda e: (e.node, e.event) == (node, NodeEvent.UP))
        await beats.wait_for(lambda b: True)
        await asyncio.sleep(HOST_INTERVAL_S * 2)  # a few regular beats

        process.send_signal(signal.SIGKILL)
        killed_at = time.time()
        await process.wait()
        down = await events.wait_for(lambda e: (e.node, e.event) == (node, NodeEvent.DOWN), 10)
        last_beat = max(b.at for b in beats.messages)
        assert down.role == "modelhost"
        assert down.last_seen == pytest.approx(last_beat)
        # Down once 3 intervals passed since the last heartbeat, and not before.
        silent = down.at - last_beat
        assert DOWN_AFTER * HOST_INTERVAL_S <= silent <= DOWN_AFTER * HOST_INTERVAL_S + SLACK_S
        assert down.at - killed_at <= DOWN_AFTER * HOST_INTERVAL_S + SLACK_S
        print(
            f"\nSIGKILL -> down event {down.at - killed_at:.2f}s, last heartbeat -> down "
            f"{silent:.2f}s (interval {HOST_INTERVAL_S}s, down after {DOWN_AFTER})"
        )

        # The same node id started again is up again.
        process = await start_modelhost_process(nats_server, node, tmp_path / "host.log")
        await events.wait_for(
            lambda e: (e.node, e.event) == (node, NodeEvent.UP) and e.at > down.at, 10
        )
    finally:
        if process.returncode is None:
            with contextlib.suppress(ProcessLookupError):
                process.terminate()
            await asyncio.wait_for(process.wait(), 15)
