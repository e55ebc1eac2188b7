"""The gateway's windows on the cluster: /api/v1/cluster, /api/v1/events (SSE), /metrics, /dashboard."""

from __future__ import annotations

import asyncio
import json
from typing import Any

import msgpack
from aiohttp.test_utils import make_mocked_request
from prometheus_client.parser import text_string_to_metric_families

from gateway.http_metrics import method_of
from gateway.service import NODE_ID
from tests.conftest import eventually
from tests.gateway.conftest import upload_file
from tests.observe.conftest import INTERVAL_S


async def read_event(response, timeout_s: float = 10.0) -> tuple[str, dict[str, Any]]:
    """The next SSE event of a stream: (event name, JSON data); comments are skipped."""
    kind, data = "message", []
    while True:
        line = (await asyncio.wait_for(response.content.readline(), timeout_s)).decode()
        assert line, "the stream ended"
        line = line.rstrip("\n")
        if not line:
            if data:
                return kind, json.loads("\n".join(data))
            continue
        if line.startswith(":") or line.startswith("retry:"):
            continue
        field, _, value = line.partition(": ")
        if field == "event":
            kind = value
        elif field == "data":
            data.append(value)


async def test_cluster_lists_nodes_and_models(
    make_gateway, upload, model_files, start_modelhost, start_metrics
):
    await upload("adder", model_files.add_one)
    host = await start_modelhost(heartbeat_interval_s=INTERVAL_S)
    gateway = await make_gateway(heartbeat_interval_s=INTERVAL_S)
    metrics = await start_metrics()
    body: dict[str, Any] = {}

    async def all_seen() -> bool:
        response = await gateway.get("/api/v1/cluster")
        body.clear()
        body.update(await response.json())
        if response.status == 503:  # seen once on a loaded machine, right after the start
            return False
        assert response.status == 200, body
        return len(body["nodes"]) == 3 and bool(body["models"])

    await eventually(all_seen)
    assert body["http_status"]["code"] == 200
    assert body["node"] == metrics.node_id
    nodes = {n["node"]: n for n in body["nodes"]}
    assert nodes[host.node_id]["role"] == "modelhost"
    assert nodes[host.node_id]["state"] == "up"
    assert nodes[host.node_id]["models"] == ["adder:1"]
    assert nodes[gateway.server.app[NODE_ID]]["role"] == "gateway"
    assert nodes[metrics.node_id]["rss_bytes"] > 0
    [model] = body["models"]
    assert (model["model"], model["version"], model["nodes"]) == ("adder", 1, [host.node_id])


async def test_cluster_without_a_metrics_actor_is_a_clear_503(gateway):
    response = await gateway.get("/api/v1/cluster")
    body = await response.json()
    assert response.status == 503
    assert "no metrics actor" in body["http_status"]["description"]


async def test_events_stream_model_and_node_events(
    make_gateway, model_files, start_modelhost, start_metrics
):
    gateway = await make_gateway(heartbeat_interval_s=INTERVAL_S)
    await start_modelhost(heartbeat_interval_s=INTERVAL_S)
    response = await gateway.get("/api/v1/events")
    assert response.status == 200
    assert response.headers["Content-Type"].startswith("text/event-stream")
    assert (await response.content.readline()).startswith(b"retry:")
    assert await response.content.readline() == b": connected\n"

    await upload_file(gateway, "adder", model_files.add_one)
    seen: list[tuple[str, dict[str, Any]]] = []
    while not any(k == "model" and e["event"] == "loaded" for k, e in seen):
        seen.append(await read_event(response))
    kind, uploaded = seen[0]
    assert kind == "model"
    assert (uploaded["event"], uploaded["model"], uploaded["version"]) == ("uploaded", "adder", 1)
    assert uploaded["subject"] == "mlbuffet.events.model.adder"
    assert uploaded["type"] == "mlbuffet.model_event.v1"

    metrics = await start_metrics()
    while True:
        kind, event = await read_event(response)
        if kind == "node" and event["node"] == metrics.node_id:
            break
    assert event["event"] == "up" and event["role"] == "metrics"
    response.close()


async def test_an_open_event_stream_does_not_hold_up_shutdown(make_gateway):
    gateway = await make_gateway()
    response = await gateway.get("/api/v1/events")
    await response.content.readline()
    loop = asyncio.get_running_loop()
    started = loop.time()
    await gateway.close()
    assert loop.time() - started < 5


async def test_gateway_metrics_count_requests_by_route_and_status(gateway):
    for _ in range(3):
        await gateway.get("/api/test")
    await gateway.get("/api/v1/models/nosuchmodel")
    await gateway.get("/nowhere")
    response = await gateway.get("/metrics")
    assert response.status == 200
    assert response.headers["Content-Type"].startswith("text/plain")
    families = {f.name: f for f in text_string_to_metric_families(await response.text())}
    requests = {
        (s.labels["route"], s.labels["method"], s.labels["status"]): s.value
        for s in families["mlbuffet_http_requests"].samples
        if s.name == "mlbuffet_http_requests_total"
    }
    assert requests[("/api/test", "GET", "200")] == 3
    assert requests[("/api/v1/models/{ref}", "GET", "404")] == 1
    assert requests[("unmatched", "GET", "404")] == 1
    durations = families["mlbuffet_http_request_duration_seconds"].samples
    count = next(
        s.value for s in durations if s.name.endswith("_count") and s.labels["route"] == "/api/test"
    )
    assert count == 3
    assert "process_resident_memory_bytes" in families
    assert "mlbuffet_http_requests_in_flight" in families


async def test_dashboard_is_one_static_page_with_security_headers(gateway):
    response = await gateway.get("/dashboard")
    assert response.status == 200
    assert response.headers["Content-Type"].startswith("text/html")
    csp = response.headers["Content-Security-Policy"]
    assert "default-src 'none'" in csp and "script-src 'self'" in csp
    assert "frame-ancestors 'none'" in csp
    assert response.headers["X-Content-Type-Options"] == "nosniff"
    assert response.headers["X-Frame-Options"] == "DENY"
    assert response.headers["Referrer-Policy"] == "no-referrer"
    page = await response.text()
    assert '<script src="/dashboard/dashboard.js"' in page
    assert "<script>" not in page  # nothing inline: the CSP would refuse it
    script = await gateway.get("/dashboard/dashboard.js")
    assert script.status == 200 and script.headers["Content-Type"].startswith("text/javascript")
    assert "innerHTML" not in await script.text()
    for bad in ("/dashboard/..%2Fapp.py", "/dashboard/app.py", "/dashboard/dashboard.html.bak"):
        assert (await gateway.get(bad)).status == 404, bad


def test_made_up_methods_do_not_grow_the_label_set():
    assert method_of(make_mocked_request("BREW", "/api/test")) == "OTHER"
    assert method_of(make_mocked_request("DELETE", "/api/test")) == "DELETE"


async def test_events_that_json_cannot_carry_are_skipped(gateway, nc):
    response = await gateway.get("/api/v1/events")
    await response.content.readline()
    await response.content.readline()
    await nc.publish("mlbuffet.events.model.x", b"\xc1 not msgpack")
    await nc.publish("mlbuffet.events.model.x", msgpack.packb({b"raw": 1}, use_bin_type=True))
    await nc.publish("mlbuffet.events.model.x", msgpack.packb({"event": "ok", "blob": b"\x01"}))
    kind, event = await read_event(response)
    assert (kind, event["event"], event["blob"]) == ("model", "ok", "01")
    response.close()
