"""What nodes say about themselves (heartbeats, with the models they hold) and what the
metrics actor answers about all of them (the cluster status)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from mlbuffet.protocol.errors import BadRequestError
from mlbuffet.protocol.fields import check_type, finite_field, optional_field, required_field
from mlbuffet.protocol.names import parse_node_id


@dataclass(frozen=True, slots=True)
class LoadedModel:
    """A model version a node has in memory."""

    model: str
    version: int

    def to_dict(self) -> dict[str, Any]:
        return {"model": self.model, "version": self.version}

    @classmethod
    def from_dict(cls, raw: Any) -> LoadedModel:
        if not isinstance(raw, Mapping):
            raise BadRequestError("a loaded model must be a map")
        return cls(
            model=required_field(raw, "model", str, "loaded model"),
            version=required_field(raw, "version", int, "loaded model"),
        )


@dataclass(frozen=True, slots=True)
class Heartbeat:
    """Subject mlbuffet.heartbeat.<role>.<node>: a node says it is alive, and how it is doing.

    Counters run from `started_at` and only grow, so a reader can take the
    difference of two heartbeats and add up several nodes' counters.
    """

    TYPE = "mlbuffet.heartbeat.v1"

    node: str
    role: str
    host: str
    pid: int
    version: str
    """MLBuffet's version."""
    started_at: float
    """Unix time the process started, in seconds."""
    at: float
    """Unix time of this heartbeat."""
    interval_s: float
    """Seconds until the next heartbeat: a reader declares the node down after missing a few."""
    cpu_percent: float
    """Process CPU time over wall time since the previous heartbeat (100 = one core)."""
    rss_bytes: int
    in_flight: int
    """Requests being served right now."""
    models: tuple[LoadedModel, ...] = ()
    counters: Mapping[str, Any] = field(default_factory=dict)
    """Role-specific counters since start (docs/protocol.md lists them)."""
    latency: Mapping[str, Any] = field(default_factory=dict)
    """Summary over every request since start: count, mean_s, p50_s, p99_s."""

    def to_dict(self) -> dict[str, Any]:
        return {
            "type": self.TYPE,
            "node": self.node,
            "role": self.role,
            "host": self.host,
            "pid": self.pid,
            "version": self.version,
            "started_at": self.started_at,
            "at": self.at,
            "interval_s": self.interval_s,
            "cpu_percent": self.cpu_percent,
            "rss_bytes": self.rss_bytes,
            "in_flight": self.in_flight,
            "models": [m.to_dict() for m in self.models],
            "counters": dict(self.counters),
            "latency": dict(self.latency),
        }

    @classmethod
    def from_dict(cls, raw: Mapping[str, Any]) -> Heartbeat:
        check_type(raw, cls.TYPE)
        what = "heartbeat"
        # The metrics actor puts node and role in subjects and compares the times:
        # a heartbeat from anyone on the bus must not break either.
        interval_s = finite_field(raw, "interval_s", what)
        if interval_s <= 0:
            raise BadRequestError("heartbeat: 'interval_s' must be positive")
        return cls(
            node=parse_node_id(required_field(raw, "node", str, what)),
            role=parse_node_id(required_field(raw, "role", str, what), "role"),
            host=required_field(raw, "host", str, what),
            pid=required_field(raw, "pid", int, what),
            version=required_field(raw, "version", str, what),
            started_at=finite_field(raw, "started_at", what),
            at=finite_field(raw, "at", what),
            interval_s=interval_s,
            cpu_percent=finite_field(raw, "cpu_percent", what),
            rss_bytes=required_field(raw, "rss_bytes", int, what),
            in_flight=required_field(raw, "in_flight", int, what),
            models=tuple(
                LoadedModel.from_dict(m) for m in optional_field(raw, "models", list, what) or ()
            ),
            counters=optional_field(raw, "counters", dict, what) or {},
            latency=optional_field(raw, "latency", dict, what) or {},
        )


@dataclass(frozen=True, slots=True)
class ClusterStatus:
    """Reply of mlbuffet.cluster.status: every node and every model, as the metrics actor sees them.

    `nodes` and `models` are lists of plain maps (docs/protocol.md has their fields).
    """

    TYPE = "mlbuffet.cluster_status.v1"

    node: str
    """The metrics actor that answered."""
    at: float
    nodes: tuple[Mapping[str, Any], ...] = ()
    models: tuple[Mapping[str, Any], ...] = ()

    def to_dict(self) -> dict[str, Any]:
        return {
            "type": self.TYPE,
            "node": self.node,
            "at": self.at,
            "nodes": [dict(n) for n in self.nodes],
            "models": [dict(m) for m in self.models],
        }

    @classmethod
    def from_dict(cls, raw: Mapping[str, Any]) -> ClusterStatus:
        check_type(raw, cls.TYPE)
        what = "cluster status"
        nodes = required_field(raw, "nodes", list, what)
        models = required_field(raw, "models", list, what)
        if not all(isinstance(n, Mapping) for n in (*nodes, *models)):
            raise BadRequestError("cluster status: nodes and models must be maps")
        return cls(
            node=required_field(raw, "node", str, what),
            at=float(required_field(raw, "at", (int, float), what)),
            nodes=tuple(nodes),
            models=tuple(models),
        )


@dataclass(frozen=True, slots=True)
class SeriesRequest:
    """Request of mlbuffet.cluster.series: samples after `since` (Unix time; 0 for all kept)."""

    TYPE = "mlbuffet.series_request.v1"

    since: float = 0.0

    def to_dict(self) -> dict[str, Any]:
        return {"type": self.TYPE, "since": self.since}

    @classmethod
    def from_dict(cls, raw: Mapping[str, Any]) -> SeriesRequest:
        check_type(raw, cls.TYPE)
        since = optional_field(raw, "since", (int, float), "series request")
        return cls(since=0.0 if since is None else float(since))


@dataclass(frozen=True, slots=True)
class ClusterSeries:
    """Reply of mlbuffet.cluster.series: the metrics actor's recent samples, column by column.

    `times` are the samples' Unix times; each of `nodes` (by node id) and
    `models` (by `<model>:<version>`) maps a measure's name to one value per
    time, None where that node or version was not there. docs/protocol.md
    has the measures.
    """

    TYPE = "mlbuffet.cluster_series.v1"

    node: str
    interval_s: float
    times: tuple[float, ...] = ()
    nodes: Mapping[str, Mapping[str, list[Any]]] = field(default_factory=dict)
    models: Mapping[str, Mapping[str, list[Any]]] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return {
            "type": self.TYPE,
            "node": self.node,
            "interval_s": self.interval_s,
            "times": list(self.times),
            "nodes": {k: dict(v) for k, v in self.nodes.items()},
            "models": {k: dict(v) for k, v in self.models.items()},
        }

    @classmethod
    def from_dict(cls, raw: Mapping[str, Any]) -> ClusterSeries:
        check_type(raw, cls.TYPE)
        what = "cluster series"
        times = required_field(raw, "times", list, what)
        nodes = required_field(raw, "nodes", dict, what)
        models = required_field(raw, "models", dict, what)
        if not all(isinstance(t, int | float) for t in times):
            raise BadRequestError("cluster series: times must be numbers")
        for table in (nodes, models):
            if not all(isinstance(v, Mapping) for v in table.values()):
                raise BadRequestError("cluster series: every node and model must be a map")
        return cls(
            node=required_field(raw, "node", str, what),
            interval_s=float(required_field(raw, "interval_s", (int, float), what)),
            times=tuple(float(t) for t in times),
            nodes=nodes,
            models=models,
        )
