"""The gateway's own numbers: HTTP requests by route and status, for /metrics and heartbeats.

One middleware counts every answer under its route *template*
(`/api/v1/models/{ref}/prediction`, never the concrete URL, so the label set
stays small; `unmatched` for URLs no route knows; status 499 when the client
hung up first, as an event stream's client does). The same counts go out in
the gateway's heartbeats (the metrics actor exports them per node) and on the
gateway's own `GET /metrics`, with request durations and the process metrics.
"""

from __future__ import annotations

import asyncio
import time
from collections import Counter
from collections.abc import Awaitable, Callable, Iterator
from typing import Any

from aiohttp import web
from prometheus_client import CollectorRegistry, Histogram, ProcessCollector
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from mlbuffet.observe.histograms import HTTP_SECONDS_BUCKETS

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]

UNMATCHED = "unmatched"
CLIENT_CLOSED = 499
"""Status counted for a request whose client went away before the answer (nginx's convention)."""


class HttpMetrics(Collector):
    def __init__(self) -> None:
        self.requests: Counter[tuple[str, str, str]] = Counter()
        """(route, method, status) -> requests answered."""
        self.in_flight = 0
        self.registry = CollectorRegistry(auto_describe=False)
        self.registry.register(self)
        ProcessCollector(registry=self.registry)
        self.duration = Histogram(
            "mlbuffet_http_request_duration_seconds",
            "Time the gateway took to answer an HTTP request (whole body for streams)",
            ["route", "method"],
            buckets=HTTP_SECONDS_BUCKETS,
            registry=self.registry,
        )
        self._durations: dict[tuple[str, str], Histogram] = {}
        """(route, method) -> the histogram's child: the label set is bounded (route_of)."""

    def count(self, route: str, method: str, status: int, elapsed_s: float) -> None:
        self.requests[(route, method, str(status))] += 1
        # labels() checks and looks the child up under a lock on every call: keep our own.
        timer = self._durations.get((route, method))
        if timer is None:
            timer = self._durations[(route, method)] = self.duration.labels(route, method)
        timer.observe(elapsed_s)

    def rows(self) -> list[dict[str, Any]]:
        """The `http_requests` counter rows of a gateway heartbeat."""
        return [
            {"route": route, "method": method, "status": status, "count": count}
            for (route, method, status), count in sorted(self.requests.items())
        ]

    def collect(self) -> Iterator[Metric]:
        requests = CounterMetricFamily(
            "mlbuffet_http_requests",
            "HTTP requests answered, by route template, method and status",
            labels=["route", "method", "status"],
        )
        for (route, method, status), count in sorted(self.requests.items()):
            requests.add_metric([route, method, status], float(count))
        yield requests
        in_flight = GaugeMetricFamily(
            "mlbuffet_http_requests_in_flight",
            "HTTP requests being answered right now (SSE streams too)",
        )
        in_flight.add_metric([], float(self.in_flight))
        yield in_flight


HTTP_METRICS = web.AppKey("http_metrics", HttpMetrics)


KNOWN_METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "DELETE", "PATCH", "OPTIONS"})
"""Any other method is counted as OTHER: a client must not be able to grow the label set."""


def method_of(request: web.Request) -> str:
    return request.method if request.method in KNOWN_METHODS else "OTHER"


def route_of(request: web.Request) -> str:
    resource = request.match_info.route.resource
    return resource.canonical if resource is not None else UNMATCHED


@web.middleware
async def http_metrics_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Outermost middleware: sees the status the errors middleware rendered."""
    metrics = request.app[HTTP_METRICS]
    started = time.perf_counter()
    metrics.in_flight += 1
    status = 500
    try:
        response = await handler(request)
        status = response.status
        return response
    except web.HTTPException as exc:
        status = exc.status
        raise
    except asyncio.CancelledError:
        status = CLIENT_CLOSED  # the client hung up (or the server is stopping) first
        raise
    finally:
        metrics.in_flight -= 1
        metrics.count(route_of(request), method_of(request), status, time.perf_counter() - started)
