"""Watching the cluster: its status and recent series, the events (live and kept), the gateway's metrics."""

from __future__ import annotations

import asyncio
import contextlib
import math

from aiohttp import web
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from gateway.config import WHO
from gateway.envelope import reply
from gateway.event_feeds import EVENT_FEEDS, HISTORY_LIMIT, MAX_HISTORY_LIMIT, event_history
from gateway.http_metrics import HTTP_METRICS
from gateway.routes.common import mesh_of
from gateway.routes.table import SMALL_BODY_BYTES, Route
from mlbuffet.apikeys import Scope
from mlbuffet.observe.cluster_status import cluster_series, cluster_status
from mlbuffet.protocol.errors import BadRequestError

KEEPALIVE_S = 15.0
"""An SSE comment this often keeps proxies from closing an idle stream."""
RETRY_MS = 2000


async def get_cluster(request: web.Request) -> web.Response:
    status = await cluster_status(mesh_of(request).nc, who=WHO)
    return reply(200, node=status.node, at=status.at, nodes=status.nodes, models=status.models)


async def get_cluster_series(request: web.Request) -> web.Response:
    """The metrics actor's samples of the last minutes (after `?since=<unix time>` only)."""
    raw = request.query.get("since", "0")
    try:
        since = float(raw)
    except ValueError:
        since = math.nan
    if not math.isfinite(since) or since < 0:
        raise BadRequestError(f"since={raw!r}: give a Unix time in seconds (or leave it out)")
    series = await cluster_series(mesh_of(request).nc, since)
    return reply(
        200,
        node=series.node,
        interval_s=series.interval_s,
        times=series.times,
        nodes=series.nodes,
        models=series.models,
    )


async def get_event_history(request: web.Request) -> web.Response:
    """The last events the mesh kept (model, node, training state), oldest first."""
    raw = request.query.get("limit", str(HISTORY_LIMIT))
    if not (raw.isascii() and raw.isdigit()) or not 1 <= int(raw) <= MAX_HISTORY_LIMIT:
        raise BadRequestError(
            f"limit={raw!r}: give a number of events from 1 to {MAX_HISTORY_LIMIT}"
        )
    events = await event_history(mesh_of(request).nc, int(raw))
    return reply(200, events=events)


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
        "/api/v1/cluster/series",
        get_cluster_series,
        "the last 15 minutes, sampled every 2 s (?since=<unix time> for newer ones): "
        "per node CPU, memory, in flight, queue, refusals/s; per model req/s, failures/s, p50/p99",
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
    Route(
        "GET",
        "/api/v1/events/history",
        get_event_history,
        "the last events the mesh kept (?limit=50): models, nodes, training jobs' states",
        Scope.READ,
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
