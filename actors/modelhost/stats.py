"""What a modelhost counts about the requests it serves, per model version.

Counters and histograms run from the start of the process and only grow, so
whoever reads them (heartbeats, Prometheus) can take differences between two
readings, and two hosts' readings add up (mlbuffet/observe/histograms.py).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from mlbuffet.observe.histograms import BATCH_BUCKETS, SECONDS_BUCKETS, BucketHistogram


@dataclass(slots=True)
class VersionStats:
    """Requests served for one model version on this host."""

    success: int = 0
    failure: int = 0
    failure_s: float = 0.0
    """Summed latency of the failed requests (the latency histogram holds both kinds)."""
    rows: int = 0
    """Rows (inferences) of the successful requests: Triton's inference_count."""
    runs: float = 0.0
    """onnxruntime runs, each request adding its share (its rows / the run's rows): Triton's
    execution_count. A share, because a batched run is split among the requests it served."""
    latency: BucketHistogram = field(default_factory=lambda: BucketHistogram(SECONDS_BUCKETS))
    """From the request's arrival at this host to its reply being sent."""
    queue: BucketHistogram = field(default_factory=lambda: BucketHistogram(SECONDS_BUCKETS))
    """From arrival to the start of the onnxruntime run that computed it."""
    compute: BucketHistogram = field(default_factory=lambda: BucketHistogram(SECONDS_BUCKETS))
    """The onnxruntime run (shared by every request of a batch)."""
    batch_size: BucketHistogram = field(default_factory=lambda: BucketHistogram(BATCH_BUCKETS))
    """Rows in the run that computed each request (1 without batching)."""

    def to_dict(self) -> dict[str, Any]:
        return {
            "success": self.success,
            "failure": self.failure,
            "failure_s": self.failure_s,
            "rows": self.rows,
            "runs": self.runs,
            "latency": self.latency.to_wire(),
            "queue": self.queue.to_wire(),
            "compute": self.compute.to_wire(),
            "batch_size": self.batch_size.to_wire(),
        }


@dataclass(slots=True)
class HostStats:
    """Every model version's counters, plus the requests in flight right now."""

    versions: dict[tuple[str, int], VersionStats] = field(default_factory=dict)
    in_flight: int = 0
    expired: int = 0
    """Requests dropped unanswered because their deadline had passed on arrival."""
    rejected: int = 0
    """Requests that failed before a model version was known (bad subject, unknown model)."""
    refused: int = 0
    """Requests refused undecoded (503) because the host had no room in flight or in its queue."""

    def of(self, model: str, version: int) -> VersionStats:
        stats = self.versions.get((model, version))
        if stats is None:
            stats = self.versions[(model, version)] = VersionStats()
        return stats

    def succeeded(
        self,
        model: str,
        version: int,
        *,
        latency_s: float,
        queue_s: float,
        compute_s: float,
        batch_size: int = 1,
        rows: int = 1,
    ) -> None:
        stats = self.of(model, version)
        stats.success += 1
        stats.rows += rows
        stats.runs += rows / batch_size
        stats.latency.observe(latency_s)
        stats.queue.observe(queue_s)
        stats.compute.observe(compute_s)
        stats.batch_size.observe(batch_size)

    def failed(self, model: str, version: int | None, *, latency_s: float) -> None:
        if version is None:
            self.rejected += 1
            return
        stats = self.of(model, version)
        stats.failure += 1
        stats.failure_s += latency_s
        stats.latency.observe(latency_s)

    def to_dict(self) -> dict[str, Any]:
        """A plain snapshot (for a heartbeat): `models` maps "model:version" to its stats."""
        return {
            "in_flight": self.in_flight,
            "expired": self.expired,
            "rejected": self.rejected,
            "refused": self.refused,
            "models": {f"{m}:{v}": s.to_dict() for (m, v), s in self.versions.items()},
        }
