"""The metrics actor's Prometheus output: parses, and counts exactly the predictions made."""

from __future__ import annotations

import asyncio

import aiohttp
import pytest

from actors.metrics.config import MetricsConfig
from mlbuffet.config import ConfigError
from mlbuffet.roles.runner import StartupError
from tests.actors.conftest import adder_input, infer
from tests.conftest import eventually
from tests.observe.conftest import INTERVAL_S, scrape, value

PREDICTIONS = 7
HISTOGRAMS = (
    "mlbuffet_inference_request_duration_seconds",
    "mlbuffet_inference_queue_duration_seconds",
    "mlbuffet_inference_compute_duration_seconds",
    "mlbuffet_inference_batch_size",
)


async def test_counters_and_histograms_rise_by_exactly_the_predictions_made(
    nc, upload, model_files, start_modelhost, start_metrics
):
    await upload("adder", model_files.add_one)
    host = await start_modelhost(heartbeat_interval_s=INTERVAL_S)
    metrics = await start_metrics()
    await infer(nc, "adder", adder_input())  # a first one, so the series exist
    labels = {"model": "adder", "version": "1", "node": host.node_id}

    async def settled(success: int, failure: int = 0) -> dict:
        """A scrape once the latest heartbeat reports these successes and failures."""
        result: dict = {}

        async def check() -> bool:
            result.clear()
            result.update(await scrape(metrics.metrics_url))
            return (
                value(result, "mlbuffet_inference_request_success_total", **labels),
                value(result, "mlbuffet_inference_request_failure_total", **labels),
            ) == (success, failure)

        await eventually(check, timeout_s=10)
        return result

    before = await settled(1)
    await asyncio.gather(*(infer(nc, "adder", adder_input(2)) for _ in range(PREDICTIONS)))
    with pytest.raises(Exception):  # noqa: B017 - any error reply: a failure on a known version
        await infer(nc, "adder", {"nope": adder_input()["x"]})
    after = await settled(1 + PREDICTIONS, 1)

    def delta(name: str, **extra: str) -> float:
        return value(after, name, **labels, **extra) - value(before, name, **labels, **extra)

    assert delta("mlbuffet_inference_request_success_total") == PREDICTIONS
    assert delta("mlbuffet_inference_request_failure_total") == 1
    for name in HISTOGRAMS:
        expected = PREDICTIONS + (1 if name.endswith("request_duration_seconds") else 0)
        assert delta(f"{name}_count") == expected, name
        assert delta(f"{name}_bucket", le="+Inf") == expected, name
        buckets = [s for s in after[f"{name}_bucket"] if s.labels["node"] == host.node_id]
        counts = [s.value for s in buckets]
        assert counts == sorted(counts), f"{name}: buckets must be cumulative"
    # Every one of the batch was one request of 2 rows: batch size 1 (no batching) or more.
    assert delta("mlbuffet_inference_batch_size_sum") >= PREDICTIONS

    assert value(after, "mlbuffet_node_up", node=host.node_id, role="modelhost") == 1
    assert value(after, "mlbuffet_node_up", node=metrics.node_id, role="metrics") == 1
    assert value(after, "mlbuffet_node_models_loaded", node=host.node_id) == 1
    assert value(after, "mlbuffet_node_rss_bytes", node=host.node_id) > 0
    assert "mlbuffet_inference_pending_requests" in after
    assert "mlbuffet_node_cpu_percent" in after


async def test_two_modelhosts_add_up(nc, upload, model_files, start_modelhost, start_metrics):
    await upload("adder", model_files.add_one)
    hosts = [await start_modelhost(heartbeat_interval_s=INTERVAL_S) for _ in range(2)]
    metrics = await start_metrics()
    await asyncio.gather(*(infer(nc, "adder", adder_input()) for _ in range(20)))

    async def all_counted() -> bool:
        samples = await scrape(metrics.metrics_url)
        per_host = [
            value(samples, "mlbuffet_inference_request_success_total", node=h.node_id)
            for h in hosts
        ]
        return sum(per_host) == 20

    await eventually(all_counted)


async def test_memory_budget_used_and_evictions_are_the_hosts_own_figures(
    nc, upload, model_files, start_modelhost, start_metrics
):
    await upload("adder", model_files.add_one)
    host = await start_modelhost(heartbeat_interval_s=INTERVAL_S, memory_budget=64 * 2**20)
    metrics = await start_metrics()
    labels = {"node": host.node_id}

    async def reported() -> bool:
        samples = await scrape(metrics.metrics_url)
        return (
            value(samples, "mlbuffet_modelhost_memory_budget_bytes", **labels),
            value(samples, "mlbuffet_modelhost_memory_used_bytes", **labels),
            value(samples, "mlbuffet_modelhost_evictions_total", **labels),
        ) == (64 * 2**20, host.models.used(), host.models.memory.evictions)

    await eventually(reported)
    assert host.models.used() >= model_files.add_one.stat().st_size  # measured, at least its file


async def test_the_gateway_http_requests_reach_the_metrics_actor(make_gateway, start_metrics):
    metrics = await start_metrics()
    gateway = await make_gateway(heartbeat_interval_s=INTERVAL_S)
    for _ in range(4):
        await gateway.get("/api/test")

    async def counted() -> bool:
        samples = await scrape(metrics.metrics_url)
        return value(samples, "mlbuffet_http_requests_total", route="/api/test", status="200") == 4

    await eventually(counted)


async def test_a_taken_metrics_port_is_one_clear_line(start_metrics):
    first = await start_metrics()
    with pytest.raises(StartupError, match="already in use"):
        await start_metrics(metrics_port=first.server.port)


def test_bad_settings_name_the_flag():
    with pytest.raises(ConfigError, match="--metrics-port"):
        MetricsConfig(metrics_port=70000)
    with pytest.raises(ConfigError, match="--down-after"):
        MetricsConfig(down_after=0)
    with pytest.raises(ConfigError, match="--heartbeat-interval"):
        MetricsConfig(heartbeat_interval_s=0)


async def test_the_metrics_endpoint_serves_only_metrics(start_metrics):
    metrics = await start_metrics()
    url = metrics.metrics_url.replace("/metrics", "/other")
    async with aiohttp.ClientSession() as session, session.get(url) as response:
        assert response.status == 404
