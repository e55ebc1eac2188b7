"""Triton's statistics extension: per-version inference statistics, summed over the modelhosts.

Made from the counters each modelhost keeps anyway for its heartbeats
(actors/modelhost/stats.py), so serving a request costs nothing more for
it. A mesh has no single server: the figures are the sum over the
modelhosts that answer now; a host that stopped takes its counts with it.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from mlbuffet.protocol.cluster import Heartbeat

NS_PER_S = 1_000_000_000


@dataclass(slots=True)
class VersionTotals:
    """One model version's counters, summed over hosts."""

    success: int = 0
    failure: int = 0
    latency_s: float = 0.0
    failure_s: float = 0.0
    queue_s: float = 0.0
    compute_s: float = 0.0
    rows: int = 0
    runs: float = 0.0
    last_inference_ms: int = 0

    def add(self, raw: Mapping[str, Any], at_ms: int) -> None:
        self.success += int(raw.get("success", 0))
        self.failure += int(raw.get("failure", 0))
        self.latency_s += float(raw.get("latency", {}).get("sum", 0.0))
        self.failure_s += float(raw.get("failure_s", 0.0))
        self.queue_s += float(raw.get("queue", {}).get("sum", 0.0))
        self.compute_s += float(raw.get("compute", {}).get("sum", 0.0))
        self.rows += int(raw.get("rows", 0))
        self.runs += float(raw.get("runs", 0.0))
        if raw.get("success") or raw.get("failure"):
            # Hosts do not stamp each request; their beat's time bounds the last one.
            self.last_inference_ms = max(self.last_inference_ms, at_ms)


def totals(beats: Iterable[Heartbeat]) -> dict[tuple[str, int], VersionTotals]:
    """Every model version any host reports, its counters added up."""
    out: dict[tuple[str, int], VersionTotals] = {}
    for beat in beats:
        models = beat.counters.get("models", {})
        for key, raw in models.items():
            name, _, number = str(key).rpartition(":")
            if not number.isdigit():
                continue
            entry = out.setdefault((name, int(number)), VersionTotals())
            entry.add(raw, int(beat.at * 1000))
    return out


def duration(count: int, seconds: float) -> dict[str, int]:
    return {"count": count, "ns": round(max(0.0, seconds) * NS_PER_S)}


def version_stats(name: str, version: int, t: VersionTotals) -> dict[str, Any]:
    """Triton's model_stats entry. Input decoding and output encoding are not timed apart on
    the hosts: they are inside success but not in compute_input/compute_output (0 ns)."""
    return {
        "name": name,
        "version": str(version),
        "last_inference": t.last_inference_ms,
        "inference_count": t.rows,
        "execution_count": round(t.runs),
        "inference_stats": {
            "success": duration(t.success, t.latency_s - t.failure_s),
            "fail": duration(t.failure, t.failure_s),
            "queue": duration(t.success, t.queue_s),
            "compute_input": duration(t.success, 0.0),
            "compute_infer": duration(t.success, t.compute_s),
            "compute_output": duration(t.success, 0.0),
            "cache_hit": duration(0, 0.0),
            "cache_miss": duration(0, 0.0),
        },
        "batch_stats": [],
        "memory_usage": [],
    }


def statistics(
    beats: Iterable[Heartbeat], wanted: Iterable[tuple[str, Iterable[int]]]
) -> dict[str, Any]:
    """`model_stats` for the wanted (model, versions) pairs, zeros where no host served one."""
    summed = totals(beats)
    return {
        "model_stats": [
            version_stats(name, number, summed.get((name, number), VersionTotals()))
            for name, numbers in wanted
            for number in sorted(numbers)
        ]
    }
