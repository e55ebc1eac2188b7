"""The dashboard in a real browser (Debian's headless chromium): live nodes, request counts rising.

scripts/prepare-test-machine (run by make test) installs chromium; a machine without it fails here with a clear
message rather than skipping, so a missing browser cannot hide a broken page.
The screenshot is saved under artifacts/ (ignored by git); the test prints where.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from gateway.service import NODE_ID
from tests.actors.conftest import adder_input, infer
from tests.conftest import eventually
from tests.observe.browser import open_page
from tests.observe.conftest import INTERVAL_S

ARTIFACTS = Path(__file__).resolve().parents[2] / "artifacts"
PAGE_TIMEOUT_S = 20.0


@pytest.mark.processes
async def test_the_dashboard_shows_live_nodes_and_rising_request_counts(
    nc, upload, model_files, start_modelhost, make_gateway, start_metrics, tmp_path, worker_id
):
    await upload("adder", model_files.add_one)
    host = await start_modelhost(heartbeat_interval_s=INTERVAL_S)
    gateway = await make_gateway(heartbeat_interval_s=INTERVAL_S)
    metrics = await start_metrics()
    await infer(nc, "adder", adder_input())

    async with open_page(str(gateway.make_url("/dashboard")), tmp_path / "chromium") as page:

        async def shows(selector: str, expected: str) -> bool:
            return await page.text(selector) == expected

        async def lists(node: str) -> bool:
            return node in (await page.text("#nodes tbody") or "")

        # History on open: the host loaded the model before the page existed.
        loaded = f"model adder:1 loaded on {host.node_id}"
        await eventually(lambda: _contains(page.text("#events"), loaded), PAGE_TIMEOUT_S)
        # The live nodes: all three, up.
        await eventually(lambda: shows("#nodes-up", "3"), PAGE_TIMEOUT_S)
        for node in (host.node_id, gateway.server.app[NODE_ID], metrics.node_id):
            await eventually(lambda node=node: lists(node), PAGE_TIMEOUT_S)
        await eventually(lambda: shows("#requests-total", "1"), PAGE_TIMEOUT_S)
        assert "adder" in (await page.text("#models tbody") or "")
        assert "error" not in (await page.evaluate("document.getElementById('status').className"))

        # The same open page counts the predictions made meanwhile.
        for _ in range(5):
            await infer(nc, "adder", adder_input())
        await eventually(lambda: shows("#requests-total", "6"), PAGE_TIMEOUT_S)
        # Events arrive live over SSE: a node that falls silent is listed down.
        await metrics.presence.heartbeat.stop()
        down = f"node {metrics.node_id} (metrics) down"
        await eventually(lambda: _contains(page.text("#events"), down), PAGE_TIMEOUT_S)
        await eventually(lambda: shows("#nodes-down", "1"), PAGE_TIMEOUT_S)
        ARTIFACTS.mkdir(exist_ok=True)
        screenshot = ARTIFACTS / f"dashboard-{worker_id}.png"
        await page.screenshot(screenshot)
    assert screenshot.stat().st_size > 5000
    print(f"\ndashboard screenshot: {screenshot}")


async def _contains(text, part: str) -> bool:
    return part in (await text or "")
