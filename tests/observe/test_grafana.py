"""deploy/grafana/mlbuffet.json names only metrics that a real scrape has."""

from __future__ import annotations

import json
import re
from pathlib import Path

from tests.actors.conftest import adder_input, infer
from tests.conftest import eventually
from tests.observe.conftest import INTERVAL_S, scrape, value

DEPLOY = Path(__file__).resolve().parents[2] / "deploy"
METRIC = re.compile(r"\bmlbuffet_[a-z_]+\b")


def dashboard_metrics() -> set[str]:
    dashboard = json.loads((DEPLOY / "grafana" / "mlbuffet.json").read_text())
    exprs = [t["expr"] for p in dashboard["panels"] for t in p.get("targets", [])]
    assert exprs, "the dashboard has no queries"
    return {name for expr in exprs for name in METRIC.findall(expr)}


async def test_the_grafana_dashboard_uses_only_metrics_that_exist(
    nc, upload, model_files, start_modelhost, make_gateway, start_metrics
):
    await upload("adder", model_files.add_one)
    host = await start_modelhost(heartbeat_interval_s=INTERVAL_S)
    gateway = await make_gateway(heartbeat_interval_s=INTERVAL_S)
    metrics = await start_metrics()
    await infer(nc, "adder", adder_input())
    await gateway.get("/api/test")

    actor: dict = {}

    async def every_series() -> bool:
        actor.clear()
        actor.update(await scrape(metrics.metrics_url))
        return value(
            actor, "mlbuffet_inference_request_success_total", node=host.node_id
        ) == 1 and (value(actor, "mlbuffet_http_requests_total", route="/api/test") == 1)

    await eventually(every_series)
    gateway_text = await (await gateway.get("/metrics")).text()
    scraped = set(actor) | set(re.findall(r"^(mlbuffet_[a-z_]+)", gateway_text, re.MULTILINE))
    missing = dashboard_metrics() - scraped
    assert not missing, f"deploy/grafana/mlbuffet.json names metrics nobody exports: {missing}"


def test_the_prometheus_config_scrapes_the_metrics_actor_and_the_gateway():
    text = (DEPLOY / "prometheus" / "prometheus.yml").read_text()
    assert "job_name: mlbuffet-metrics" in text and '"127.0.0.1:9091"' in text
    assert "job_name: mlbuffet-gateway" in text and '"127.0.0.1:8002"' in text
