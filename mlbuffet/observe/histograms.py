"""Reading the bucket histograms nodes send in their heartbeats: merge, count, quantiles.

A histogram on the wire is `{"bounds": [...], "counts": [...], "sum", "count"}`
with one count per bucket (not cumulative) and a last +Inf bucket, as
actors/modelhost/stats.py keeps them. Histograms with the same bounds add up
exactly, so the cluster view merges nodes and versions without loss.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any


@dataclass(slots=True)
class BucketHistogram:
    bounds: tuple[float, ...] = ()
    counts: list[int] = field(default_factory=list)
    sum: float = 0.0
    count: int = 0

    @classmethod
    def from_wire(cls, raw: Any) -> BucketHistogram | None:
        """The histogram of a heartbeat, or None if `raw` is not one."""
        if not isinstance(raw, Mapping):
            return None
        bounds, counts = raw.get("bounds"), raw.get("counts")
        if not isinstance(bounds, list) or not isinstance(counts, list):
            return None
        if len(counts) != len(bounds) + 1:
            return None
        try:
            return cls(
                tuple(float(b) for b in bounds),
                [int(c) for c in counts],
                float(raw.get("sum", 0.0)),
                int(raw.get("count", sum(counts))),
            )
        except (TypeError, ValueError, OverflowError):  # e.g. int(inf) in a hostile heartbeat
            return None

    def add(self, other: BucketHistogram) -> None:
        """Add `other` in; histograms with other bounds are ignored (they cannot merge exactly)."""
        if not self.bounds and not self.counts:
            self.bounds, self.counts = other.bounds, [0] * len(other.counts)
        if other.bounds != self.bounds:
            return
        self.counts = [a + b for a, b in zip(self.counts, other.counts, strict=True)]
        self.sum += other.sum
        self.count += other.count

    def cumulative(self) -> list[tuple[float, int]]:
        """(upper bound, observations <= bound) per bucket, +Inf last: Prometheus' `le` buckets."""
        total = 0
        out = []
        for bound, count in zip((*self.bounds, float("inf")), self.counts, strict=True):
            total += count
            out.append((bound, total))
        return out

    def quantile(self, q: float) -> float | None:
        """Estimate of the q-quantile, interpolated inside its bucket as Prometheus does."""
        if self.count <= 0:
            return None
        rank = q * self.count
        lower = 0.0
        seen = 0
        for bound, count in zip((*self.bounds, float("inf")), self.counts, strict=True):
            if count and seen + count >= rank:
                if bound == float("inf"):
                    return lower  # above the last bound: the best we can say
                return lower + (bound - lower) * max(0.0, rank - seen) / count
            seen += count
            lower = bound
        return lower


def merged(histograms: Iterable[Any]) -> BucketHistogram:
    """One histogram from wire histograms (invalid ones skipped)."""
    total = BucketHistogram()
    for raw in histograms:
        histogram = BucketHistogram.from_wire(raw)
        if histogram is not None:
            total.add(histogram)
    return total


def summary(histogram: BucketHistogram) -> dict[str, Any]:
    """The latency summary of a heartbeat: count, mean and p50/p99 in seconds (None if empty)."""
    return {
        "count": histogram.count,
        "mean_s": histogram.sum / histogram.count if histogram.count else None,
        "p50_s": histogram.quantile(0.5),
        "p99_s": histogram.quantile(0.99),
    }
