"""The cluster as heartbeats show it: which nodes are up, what they serve, how fast.

Pure bookkeeping with an injectable clock, so up/down decisions are tested
without waiting. A node is down once it has been silent for `down_after` of
its own announced heartbeat intervals; a heartbeat from a down (or unknown)
node makes it up. Rates come from the difference between the newest
heartbeat and the oldest one inside RATE_WINDOW_S; latency percentiles from
the cumulative histograms (every request since the node started).
"""

from __future__ import annotations

import math
import time
from collections import deque
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any

from mlbuffet.observe.histograms import BucketHistogram, merged
from mlbuffet.protocol.cluster import ClusterStatus, Heartbeat
from mlbuffet.protocol.events import NodeEvent, NodeEventKind

RATE_WINDOW_S = 10.0
"""Request rates are averaged over about this long."""


@dataclass
class NodeState:
    beat: Heartbeat
    last_seen: float
    """On the view's (monotonic) clock."""
    up: bool = True
    window: deque[Heartbeat] = field(default_factory=deque)

    def note(self, beat: Heartbeat) -> None:
        self.beat = beat
        self.window.append(beat)
        while len(self.window) > 2 and beat.at - self.window[1].at >= RATE_WINDOW_S:
            self.window.popleft()

    def rate(self, count: Callable[[Heartbeat], float]) -> float:
        """Per second, between the oldest and newest heartbeat of the window (0 with one)."""
        first, last = self.window[0], self.window[-1]
        elapsed = last.at - first.at
        if elapsed <= 0:
            return 0.0
        return max(0.0, (count(last) - count(first)) / elapsed)


def version_stats(beat: Heartbeat) -> Mapping[tuple[str, int], Mapping[str, Any]]:
    """(model, version) -> VersionStats map of a modelhost heartbeat ({} for other roles)."""
    raw = beat.counters.get("models")
    if not isinstance(raw, Mapping):
        return {}
    out = {}
    for key, stats in raw.items():
        model, _, version = str(key).rpartition(":")
        if model and version.isdigit() and isinstance(stats, Mapping):
            out[(model, int(version))] = stats
    return out


def requests_served(beat: Heartbeat) -> int:
    """Requests a node answered since it started: inferences, or HTTP requests for a gateway."""
    if beat.role == "gateway":
        return sum(count(r.get("count")) for r in http_requests(beat))
    return sum(
        count(s.get("success")) + count(s.get("failure")) for s in version_stats(beat).values()
    )


def count(raw: Any) -> int:
    """A counter of a heartbeat as an int; 0 for anything else (a heartbeat is anyone's message)."""
    if isinstance(raw, bool) or not isinstance(raw, int | float):
        return 0
    return int(raw) if math.isfinite(raw) else 0


def http_requests(beat: Heartbeat) -> list[Mapping[str, Any]]:
    """A gateway's `http_requests` counter rows (route, method, status, count)."""
    rows = beat.counters.get("http_requests")
    return [r for r in rows if isinstance(r, Mapping)] if isinstance(rows, list) else []


class ClusterView:
    def __init__(
        self,
        down_after: int = 3,
        forget_after_s: float = 600.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.down_after = down_after
        self.forget_after_s = forget_after_s
        self.clock = clock
        self.nodes: dict[str, NodeState] = {}

    def observe(self, beat: Heartbeat) -> NodeEvent | None:
        """Take a heartbeat in; a NodeEvent `up` if the node is new or was down."""
        now = self.clock()
        state = self.nodes.get(beat.node)
        if state is None:
            state = self.nodes[beat.node] = NodeState(beat, now)
            state.note(beat)
            return self._event(NodeEvent.UP, state)
        if beat.at < state.beat.at:
            return None  # late, out of order: the newer one already counted
        if beat.pid != state.beat.pid:
            state.window.clear()  # same node id, new process: counters restarted
        state.note(beat)
        state.last_seen = now
        if not state.up:
            state.up = True
            return self._event(NodeEvent.UP, state)
        return None

    def sweep(self) -> list[NodeEvent]:
        """Declare silent nodes down, forget long-gone ones; the `down` events to publish."""
        now = self.clock()
        events = []
        for node, state in list(self.nodes.items()):
            silent = now - state.last_seen
            if state.up and silent > self.down_after * state.beat.interval_s:
                state.up = False
                events.append(self._event(NodeEvent.DOWN, state))
            elif not state.up and silent > self.forget_after_s:
                del self.nodes[node]
        return events

    def up_nodes(self) -> Iterator[NodeState]:
        return (s for s in self.nodes.values() if s.up)

    def _event(self, event: NodeEventKind, state: NodeState) -> NodeEvent:
        return NodeEvent(
            event=event,
            node=state.beat.node,
            role=state.beat.role,
            at=time.time(),
            last_seen=state.beat.at,
        )

    def status(self, node_id: str) -> ClusterStatus:
        return ClusterStatus(
            node=node_id,
            at=time.time(),
            nodes=tuple(self._node_row(s) for s in sorted(self.nodes.values(), key=_node_order)),
            models=tuple(self._model_rows()),
        )

    @staticmethod
    def _node_row(state: NodeState) -> dict[str, Any]:
        beat = state.beat
        return {
            "node": beat.node,
            "role": beat.role,
            "state": "up" if state.up else "down",
            "host": beat.host,
            "pid": beat.pid,
            "version": beat.version,
            "started_at": beat.started_at,
            "last_seen": beat.at,
            "cpu_percent": beat.cpu_percent,
            "rss_bytes": beat.rss_bytes,
            "in_flight": beat.in_flight,
            "models": [f"{m.model}:{m.version}" for m in beat.models],
            "requests": requests_served(beat),
            "requests_per_s": round(state.rate(requests_served), 3),
            "latency": dict(beat.latency),
        }

    def _model_rows(self) -> Iterator[dict[str, Any]]:
        where: dict[tuple[str, int], list[str]] = {}
        stats: dict[tuple[str, int], list[tuple[NodeState, Mapping[str, Any]]]] = {}
        for state in self.up_nodes():
            for loaded in state.beat.models:
                where.setdefault((loaded.model, loaded.version), []).append(state.beat.node)
            for key, counted in version_stats(state.beat).items():
                stats.setdefault(key, []).append((state, counted))
        for model, version in sorted(where.keys() | stats.keys()):
            served = stats.get((model, version), [])
            latency: BucketHistogram = merged(s["latency"] for _, s in served if "latency" in s)

            def total(beat: Heartbeat, key: tuple[str, int] = (model, version)) -> float:
                s = version_stats(beat).get(key, {})
                return float(count(s.get("success")) + count(s.get("failure")))

            yield {
                "model": model,
                "version": version,
                "nodes": sorted(where.get((model, version), [])),
                "success": sum(count(s.get("success")) for _, s in served),
                "failure": sum(count(s.get("failure")) for _, s in served),
                "requests_per_s": round(sum(state.rate(total) for state, _ in served), 3),
                "p50_s": latency.quantile(0.5),
                "p99_s": latency.quantile(0.99),
            }


def _node_order(state: NodeState) -> tuple[str, str]:
    return state.beat.role, state.beat.node
