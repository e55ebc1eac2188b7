"""The metrics actor's samples of the last minutes, through the gateway (what the charts draw)."""

from __future__ import annotations

from typing import Any

import pytest

from tests.actors.conftest import adder_input, infer
from tests.conftest import eventually
from tests.observe.conftest import INTERVAL_S

SAMPLE_S = 0.2


async def test_the_series_show_the_requests_made_and_each_node(
    nc, upload, model_files, start_modelhost, make_gateway, start_metrics
):
    await upload("adder", model_files.add_one)
    host = await start_modelhost(heartbeat_interval_s=INTERVAL_S)
    gateway = await make_gateway(heartbeat_interval_s=INTERVAL_S)
    await start_metrics(sample_interval_s=SAMPLE_S)
    body: dict[str, Any] = {}

    async def fetch(since: float = 0.0) -> dict[str, Any]:
        response = await gateway.get("/api/v1/cluster/series", params={"since": str(since)})
        assert response.status == 200, await response.text()
        return dict(await response.json())

    async def busy() -> bool:
        # Requests keep coming while we look, so some heartbeat interval holds a few.
        for _ in range(5):
            await infer(nc, "adder", adder_input())
        body.update(await fetch())
        rates = body["models"].get("adder:1", {}).get("requests_per_s", [])
        return any(r for r in rates if r)

    await eventually(busy, 20)
    assert body["interval_s"] == SAMPLE_S
    times = body["times"]
    assert times == sorted(times) and len(times) >= 2
    series = body["models"]["adder:1"]
    assert set(series) == {"requests_per_s", "failures_per_s", "p50_s", "p99_s"}
    assert all(len(column) == len(times) for column in series.values())
    latencies = [p for p in series["p50_s"] if p is not None]
    assert latencies and all(0 < p < 5 for p in latencies)
    assert all(not failed for failed in series["failures_per_s"])  # None (no data) or 0
    node = body["nodes"][host.node_id]
    assert max(v for v in node["rss_bytes"] if v is not None) > 10 * 2**20
    assert set(node) == {"cpu_percent", "rss_bytes", "in_flight", "queued", "refused_per_s"}

    # `since` gives only what came after: a page that is open asks for the new samples.
    newer = await fetch(times[-1])
    assert all(t > times[-1] for t in newer["times"])


async def test_series_without_a_metrics_actor_is_a_503(gateway):
    response = await gateway.get("/api/v1/cluster/series")
    assert response.status == 503


@pytest.mark.parametrize("since", ["abc", "-1", "nan", "inf"])
async def test_a_bad_since_is_a_400(gateway, since):
    response = await gateway.get("/api/v1/cluster/series", params={"since": since})
    assert response.status == 400
    assert "since" in (await response.json())["http_status"]["description"]
