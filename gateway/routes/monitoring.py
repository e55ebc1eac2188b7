"""Watching the cluster: its status, the live event stream, the dashboard, the gateway's metrics."""

from __future__ import annotations

import asyncio
import contextlib
from importlib.resources import files

from aiohttp import web
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from gateway.config import WHO
from gateway.envelope import reply
from gateway.event_feeds import EVENT_FEEDS
from gateway.http_metrics import HTTP_METRICS
from gateway.routes.common import mesh_of
from gateway.routes.table import SMALL_BODY_BYTES, Route
from mlbuffet.apikeys import Scope
from mlbuffet.observe.cluster_status import cluster_status

KEEPALIVE_S = 15.0
"""An SSE comment this often keeps proxies from closing an idle stream."""
RETRY_MS = 2000

STATIC = files("gateway") / "static"
DASHBOARD_FILES = {
    "dashboard.html": "text/html",
    "dashboard.js": "text/javascript",
    "dashboard.css": "text/css",
}
SECURITY_HEADERS = {
    # Only our own files; the page talks only to this gateway.
    "Content-Security-Policy": (
        "default-src 'none'; script-src 'self'; style-src 'self'; connect-src 'self'; "
        "img-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'"
    ),
    "X-Content-Type-Options": "nosniff",
    "X-Frame-Options": "DENY",
    "Referrer-Policy": "no-referrer",
    "Cache-Control": "no-cache",
}


async def get_cluster(request: web.Request) -> web.Response:
    status = await cluster_status(mesh_of(request).nc, who=WHO)
    return reply(200, node=status.node, at=status.at, nodes=status.nodes, models=status.models)


async def stream_events(request: web.Request) -> web.StreamResponse:
    """Server-Sent Events: one `event: <model|node|train>` with JSON `data` per mesh event."""
    feeds = request.app[EVENT_FEEDS]
    async with feeds.open(mesh_of(request).nc) as feed:
        response = web.StreamResponse(
            headers={
                "Content-Type": "text/event-stream; charset=utf-8",
                "Cache-Control": "no-cache",
                "X-Accel-Buffering": "no",
                "X-Content-Type-Options": "nosniff",
            }
        )
        await response.prepare(request)
        await response.write(f"retry: {RETRY_MS}\n: connected\n\n".encode())
        reported_drops = 0
        with contextlib.suppress(ConnectionError):
            while True:
                try:
                    event = await asyncio.wait_for(feed.queue.get(), KEEPALIVE_S)
                except TimeoutError:
                    await response.write(b": keepalive\n\n")
                    continue
                if event is None:
                    break  # the gateway is shutting down
                if feed.dropped > reported_drops:
                    await response.write(
                        f": dropped {feed.dropped - reported_drops} events\n\n".encode()
                    )
                    reported_drops = feed.dropped
                await response.write(f"event: {event.kind}\ndata: {event.data}\n\n".encode())
        return response


async def dashboard(request: web.Request) -> web.Response:
    name = request.match_info.get("file", "dashboard.html")
    content_type = DASHBOARD_FILES.get(name)
    if content_type is None:
        raise web.HTTPNotFound(text=f"no dashboard file {name!r}")
    body = (STATIC / name).read_bytes()
    return web.Response(
        body=body, content_type=content_type, charset="utf-8", headers=SECURITY_HEADERS
    )


async def gateway_metrics(request: web.Request) -> web.Response:
    body = generate_latest(request.app[HTTP_METRICS].registry)
    return web.Response(body=body, headers={"Content-Type": CONTENT_TYPE_LATEST})


ROUTES = (
    Route(
        "GET",
        "/api/v1/cluster",
        get_cluster,
        "nodes (up/down, CPU, RSS, in flight) and models (where loaded, req/s, p50/p99), from the metrics actor",
        Scope.READ,
        SMALL_BODY_BYTES,
    ),
    Route(
        "GET",
        "/api/v1/events",
        stream_events,
        "Server-Sent Events: model and node events as they happen",
        Scope.READ,
        SMALL_BODY_BYTES,
    ),
    # The page and its files hold no data (its script reads the data routes with a key).
    Route(
        "GET",
        "/dashboard",
        dashboard,
        "a live page of the nodes, models and events",
        Scope.PUBLIC,
        SMALL_BODY_BYTES,
    ),
    Route(
        "GET",
        "/dashboard/{file}",
        dashboard,
        "the dashboard's script and style",
        Scope.PUBLIC,
        SMALL_BODY_BYTES,
    ),
    Route(
        "GET",
        "/metrics",
        gateway_metrics,
        "this gateway's Prometheus metrics (HTTP requests by route and status)",
        Scope.READ,
        SMALL_BODY_BYTES,
    ),
)
