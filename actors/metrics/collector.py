"""Prometheus metrics built from the latest heartbeat of every node, at scrape time.

Heartbeat counters run from each node's start and only grow, so they are
exported as real Prometheus counters and histograms: a scrape shows exactly
what the nodes counted (as of their last heartbeat), and `rate()`/`increase()`
work as usual. Names follow Triton's (`nv_inference_request_success` ->
`mlbuffet_inference_request_success_total`); docs/metrics.md lists them all.
Only nodes that are up export counters; `mlbuffet_node_up` covers every node
the view still knows.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from prometheus_client.core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    HistogramMetricFamily,
    Metric,
)
from prometheus_client.registry import Collector

from actors.metrics.cluster import ClusterView, http_requests, version_stats
from mlbuffet.observe.histograms import BucketHistogram

VERSION_LABELS = ["model", "version", "node"]
NODE_LABELS = ["node", "role"]

HISTOGRAMS = (
    (
        "latency",
        "mlbuffet_inference_request_duration_seconds",
        "Time from a request's arrival at a modelhost to its reply, successes and failures",
    ),
    (
        "queue",
        "mlbuffet_inference_queue_duration_seconds",
        "Time a successful request waited before the onnxruntime run that computed it",
    ),
    (
        "compute",
        "mlbuffet_inference_compute_duration_seconds",
        "Duration of the onnxruntime run that computed a successful request",
    ),
    (
        "batch_size",
        "mlbuffet_inference_batch_size",
        "Rows in the onnxruntime run that computed each successful request",
    ),
)


def histogram_buckets(histogram: BucketHistogram) -> list[tuple[str, float]]:
    """Prometheus' cumulative `le` buckets; `le` written as the client library writes it."""
    return [
        ("+Inf" if bound == float("inf") else repr(float(bound)), float(count))
        for bound, count in histogram.cumulative()
    ]


HOST_COUNTERS: tuple[tuple[str, type[CounterMetricFamily | GaugeMetricFamily], str, str], ...] = (
    (
        "expired",
        CounterMetricFamily,
        "mlbuffet_inference_request_expired",
        "Requests dropped unanswered because their deadline had passed on arrival",
    ),
    (
        "rejected",
        CounterMetricFamily,
        "mlbuffet_inference_request_rejected",
        "Requests that failed before a model version was known (unknown model, bad subject)",
    ),
    (
        "refused",
        CounterMetricFamily,
        "mlbuffet_inference_request_refused",
        "Requests refused at once (503) because the modelhost's in-flight places and queue were full",
    ),
    (
        "stalled",
        GaugeMetricFamily,
        "mlbuffet_modelhost_stalled",
        "1 while the modelhost is out of the queue groups because its onnxruntime runs hang",
    ),
    (
        "stalls",
        CounterMetricFamily,
        "mlbuffet_modelhost_stalls",
        "Times the modelhost left the queue groups because its onnxruntime runs hung",
    ),
    (
        "memory_budget_bytes",
        GaugeMetricFamily,
        "mlbuffet_modelhost_memory_budget_bytes",
        "Memory the modelhost's loaded models may take (--memory-budget)",
    ),
    (
        "memory_used_bytes",
        GaugeMetricFamily,
        "mlbuffet_modelhost_memory_used_bytes",
        "Memory its loaded models took, as measured when each was loaded",
    ),
    (
        "evictions",
        CounterMetricFamily,
        "mlbuffet_modelhost_evictions",
        "Models the modelhost gave up to stay within its memory budget",
    ),
)
"""Each modelhost's own counters in its heartbeat: (key, family, metric, help)."""

SINCE_BUDGETS = frozenset({"memory_budget_bytes", "memory_used_bytes", "evictions"})
"""Exported only by hosts that report them (older ones have no budget, not a zero one)."""


class ClusterCollector(Collector):
    def __init__(self, view: ClusterView) -> None:
        self.view = view

    def collect(self) -> Iterator[Metric]:
        yield from self._node_gauges()
        yield from self._inference()
        yield from self._http()

    def _node_gauges(self) -> Iterator[Metric]:
        up = GaugeMetricFamily(
            "mlbuffet_node_up", "1 if the node's heartbeats arrive, else 0", labels=NODE_LABELS
        )
        cpu = GaugeMetricFamily(
            "mlbuffet_node_cpu_percent",
            "Process CPU over the last heartbeat interval, in percent of one core",
            labels=NODE_LABELS,
        )
        rss = GaugeMetricFamily(
            "mlbuffet_node_rss_bytes", "Resident memory of the process", labels=NODE_LABELS
        )
        models = GaugeMetricFamily(
            "mlbuffet_node_models_loaded", "Model versions loaded in memory", labels=NODE_LABELS
        )
        pending = GaugeMetricFamily(
            "mlbuffet_inference_pending_requests",
            "Requests being served right now (in flight on the node)",
            labels=NODE_LABELS,
        )
        queued = GaugeMetricFamily(
            "mlbuffet_inference_queued_requests",
            "Work waiting on the node: a modelhost's requests not yet in flight, a trainer's queued jobs",
            labels=NODE_LABELS,
        )
        for state in self.view.nodes.values():
            labels = [state.beat.node, state.beat.role]
            up.add_metric(labels, 1.0 if state.up else 0.0)
            if not state.up:
                continue
            cpu.add_metric(labels, state.beat.cpu_percent)
            rss.add_metric(labels, float(state.beat.rss_bytes))
            models.add_metric(labels, float(len(state.beat.models)))
            pending.add_metric(labels, float(state.beat.in_flight))
            if "queued" in state.beat.counters:
                queued.add_metric(labels, _number(state.beat.counters["queued"]))
        yield from (up, cpu, rss, models, pending, queued)

    def _inference(self) -> Iterator[Metric]:
        success = CounterMetricFamily(
            "mlbuffet_inference_request_success",
            "Inference requests answered with a result",
            labels=VERSION_LABELS,
        )
        failure = CounterMetricFamily(
            "mlbuffet_inference_request_failure",
            "Inference requests answered with an error once their model version was known",
            labels=VERSION_LABELS,
        )
        per_host = [
            (key, family(name, doc, labels=["node"])) for key, family, name, doc in HOST_COUNTERS
        ]
        histograms = {
            key: HistogramMetricFamily(name, doc, labels=VERSION_LABELS)
            for key, name, doc in HISTOGRAMS
        }
        for state in self.view.up_nodes():
            beat = state.beat
            if beat.role != "modelhost":
                continue
            for key, metric in per_host:
                if key in beat.counters or key not in SINCE_BUDGETS:
                    metric.add_metric([beat.node], _number(beat.counters.get(key)))
            for (model, version), stats in version_stats(beat).items():
                labels = [model, str(version), beat.node]
                success.add_metric(labels, _number(stats.get("success")))
                failure.add_metric(labels, _number(stats.get("failure")))
                for key, family in histograms.items():
                    histogram = BucketHistogram.from_wire(stats.get(key))
                    if histogram is not None:
                        family.add_metric(
                            labels, histogram_buckets(histogram), sum_value=histogram.sum
                        )
        yield from (
            success,
            failure,
            *(metric for _, metric in per_host),
            *histograms.values(),
        )

    def _http(self) -> Iterator[Metric]:
        requests = CounterMetricFamily(
            "mlbuffet_http_requests",
            "HTTP requests a gateway answered, by route template, method and status",
            labels=["node", "route", "method", "status"],
        )
        for state in self.view.up_nodes():
            for row in http_requests(state.beat):
                requests.add_metric(
                    [
                        state.beat.node,
                        str(row.get("route", "")),
                        str(row.get("method", "")),
                        str(row.get("status", "")),
                    ],
                    _number(row.get("count")),
                )
        yield requests


def _number(raw: Any) -> float:
    return float(raw) if isinstance(raw, int | float) and not isinstance(raw, bool) else 0.0
