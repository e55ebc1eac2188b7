"""The cluster's recent past, sampled: what the console's charts draw when a page opens.

Every SAMPLE_INTERVAL_S the metrics actor takes one sample of the cluster
view: per node its CPU, memory, requests in flight, queue and refusals per
second; per model version its requests and failures per second and its
p50/p99 latency *over that interval* (the difference of the cumulative
histograms between two samples, so a slow minute shows as one, not diluted
by everything since the start). KEEP_S of samples are kept, bounded.
"""

from __future__ import annotations

import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from actors.metrics.cluster import ClusterView, count, version_stats
from mlbuffet.observe.histograms import BucketHistogram
from mlbuffet.protocol.cluster import ClusterSeries, Heartbeat
from mlbuffet.protocol.wire import pack

SAMPLE_INTERVAL_S = 2.0
KEEP_S = 15 * 60.0
"""How far back a page that opens sees; it keeps adding while it stays open."""

NODE_MEASURES = ("cpu_percent", "rss_bytes", "in_flight", "queued", "refused_per_s")
MODEL_MEASURES = ("requests_per_s", "failures_per_s", "p50_s", "p99_s")


@dataclass(frozen=True, slots=True)
class Sample:
    at: float
    nodes: dict[str, dict[str, float | None]]
    models: dict[str, dict[str, float | None]]


@dataclass(slots=True)
class _Interval:
    """What one node did between its last two heartbeats."""

    refused_per_s: float | None = None
    versions: dict[str, tuple[float, int, int, BucketHistogram | None]] = field(
        default_factory=dict
    )
    """`<model>:<version>` -> (seconds, requests, failures, latency histogram of the interval)."""


@dataclass
class ClusterSamples:
    interval_s: float = SAMPLE_INTERVAL_S
    clock: Callable[[], float] = time.time
    samples: deque[Sample] = field(init=False)
    _beats: dict[str, Heartbeat] = field(default_factory=dict)
    _intervals: dict[str, _Interval] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.samples = deque(maxlen=max(1, round(KEEP_S / self.interval_s)))

    def packed_series(self, node_id: str, since: float, max_bytes: int) -> bytes:
        """The series packed within `max_bytes` (NATS' max_payload): a large cluster's
        15 minutes may not fit in one message, so the oldest samples are left out."""
        most = None
        while True:
            payload = pack(self.series(node_id, since, most))
            kept = len(self.samples) if most is None else most
            if len(payload) <= max_bytes or kept == 0:
                return payload
            most = kept // 2

    def observe(self, beat: Heartbeat) -> None:
        """Note what the node did since its previous heartbeat (nothing after a restart)."""
        before = self._beats.get(beat.node)
        if before is not None and beat.at <= before.at:
            return  # late or repeated: the newer one counted already
        self._beats[beat.node] = beat
        if before is None or before.pid != beat.pid:
            self._intervals[beat.node] = _Interval()
            return
        seconds = beat.at - before.at
        interval = _Interval(
            refused_per_s=_rate(
                beat.counters.get("refused"), before.counters.get("refused"), seconds
            )
        )
        old = {f"{m}:{v}": stats for (m, v), stats in version_stats(before).items()}
        for (model, version), stats in version_stats(beat).items():
            key = f"{model}:{version}"
            prior = old.get(key, {})
            success = count(stats.get("success")) - count(prior.get("success"))
            failure = count(stats.get("failure")) - count(prior.get("failure"))
            latency = _difference(
                BucketHistogram.from_wire(stats.get("latency")),
                BucketHistogram.from_wire(prior.get("latency")),
            )
            interval.versions[key] = (seconds, max(0, success + failure), max(0, failure), latency)
        self._intervals[beat.node] = interval

    def take(self, view: ClusterView) -> Sample:
        """One sample of the up nodes now, from each one's latest heartbeat interval."""
        for gone in self._beats.keys() - view.nodes.keys():  # forgotten by the view
            del self._beats[gone]
            self._intervals.pop(gone, None)
        nodes: dict[str, dict[str, float | None]] = {}
        models: dict[str, list[tuple[float, int, int, BucketHistogram | None]]] = {}
        for state in view.up_nodes():
            beat = state.beat
            interval = self._intervals.get(beat.node, _Interval())
            nodes[beat.node] = {
                "cpu_percent": round(beat.cpu_percent, 2),
                "rss_bytes": float(beat.rss_bytes),
                "in_flight": float(beat.in_flight),
                "queued": _counter(beat, "queued"),
                "refused_per_s": interval.refused_per_s,
            }
            for key, counted in interval.versions.items():
                models.setdefault(key, []).append(counted)
        sample = Sample(self.clock(), nodes, {k: _model_row(v) for k, v in models.items()})
        self.samples.append(sample)
        return sample

    def series(self, node_id: str, since: float = 0.0, most: int | None = None) -> ClusterSeries:
        """The kept samples after `since` (the `most` newest of them), as columns (None where
        a node or version was absent)."""
        kept = [s for s in self.samples if s.at > since]
        if most is not None:
            kept = kept[len(kept) - most :] if most > 0 else []
        nodes = _columns([s.nodes for s in kept], NODE_MEASURES)
        models = _columns([s.models for s in kept], MODEL_MEASURES)
        return ClusterSeries(node_id, self.interval_s, tuple(s.at for s in kept), nodes, models)


def _counter(beat: Heartbeat, name: str) -> float | None:
    """A counter the node keeps; None for a role that has no such thing (a gateway's queue)."""
    return float(count(beat.counters[name])) if name in beat.counters else None


def _rate(now: Any, before: Any, seconds: float) -> float | None:
    if seconds <= 0 or now is None:
        return None
    return round(max(0, count(now) - count(before)) / seconds, 3)


def _difference(
    now: BucketHistogram | None, before: BucketHistogram | None
) -> BucketHistogram | None:
    """What a cumulative histogram gained between two heartbeats (None if it cannot say)."""
    if now is None:
        return None
    if before is None or before.bounds != now.bounds:
        return now
    counts = [a - b for a, b in zip(now.counts, before.counts, strict=True)]
    if min(counts, default=0) < 0:
        return None  # counters went back: not the same run of the node
    return BucketHistogram(now.bounds, counts, now.sum - before.sum, now.count - before.count)


def _model_row(
    intervals: list[tuple[float, int, int, BucketHistogram | None]],
) -> dict[str, float | None]:
    """A version's rates summed over its nodes, its latency from their merged intervals."""
    latency = BucketHistogram()
    for _, _, _, histogram in intervals:
        if histogram is not None:
            latency.add(histogram)
    return {
        "requests_per_s": round(sum(r / s for s, r, _, _ in intervals if s > 0), 3),
        "failures_per_s": round(sum(f / s for s, _, f, _ in intervals if s > 0), 3),
        "p50_s": latency.quantile(0.5),
        "p99_s": latency.quantile(0.99),
    }


def _columns(
    rows: list[dict[str, dict[str, float | None]]], measures: tuple[str, ...]
) -> dict[str, dict[str, list[float | None]]]:
    keys = sorted({key for row in rows for key in row})
    return {
        key: {m: [row[key][m] if key in row else None for row in rows] for m in measures}
        for key in keys
    }
