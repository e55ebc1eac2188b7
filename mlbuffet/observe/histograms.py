"""The bucket histograms nodes keep and send in their heartbeats: record, merge, quantiles.

A histogram on the wire is `{"bounds": [...], "counts": [...], "sum", "count"}`
with one count per bucket (not cumulative) and a last +Inf bucket. Buckets are
fixed, as Prometheus keeps them: cheap to record (one bisect), and histograms
with the same bounds add up exactly, so the cluster view merges nodes and
versions without loss. The bucket lists every node uses are here too.
"""

from __future__ import annotations

from bisect import bisect_left
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

SECONDS_BUCKETS: tuple[float, ...] = (
    0.0001,
    0.00025,
    0.0005,
    0.001,
    0.0025,
    0.005,
    0.01,
    0.025,
    0.05,
    0.1,
    0.25,
    0.5,
    1.0,
    2.5,
    5.0,
    10.0,
)
"""Upper bounds of a modelhost's time histograms, in seconds; a last bucket (+Inf) follows."""

HTTP_SECONDS_BUCKETS: tuple[float, ...] = (*SECONDS_BUCKETS[3:], 30.0)
"""Upper bounds of the gateway's HTTP durations: no HTTP answer takes under a millisecond,
and one may take the whole 30 s request timeout."""

BATCH_BUCKETS: tuple[float, ...] = (1, 2, 4, 8, 16, 32, 64, 128)
"""Upper bounds of the batch-size histogram; a last bucket (+Inf) follows."""


@dataclass(slots=True)
class BucketHistogram:
    bounds: tuple[float, ...] = ()
    counts: list[int] = field(default_factory=list)
    """One count per bucket, not cumulative; len(bounds) + 1 (the last is +Inf)."""
    sum: float = 0.0
    count: int = 0

    def __post_init__(self) -> None:
        # No bounds yet is the empty sum that `add` takes its bounds from.
        if self.bounds and not self.counts:
            self.counts = [0] * (len(self.bounds) + 1)

    def observe(self, value: float) -> None:
        self.counts[bisect_left(self.bounds, value)] += 1
        self.sum += value
        self.count += 1

    def to_wire(self) -> dict[str, Any]:
        return {
            "bounds": list(self.bounds),
            "counts": list(self.counts),
            "sum": self.sum,
            "count": self.count,
        }

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
