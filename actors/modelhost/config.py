"""Settings of one modelhost process."""

from __future__ import annotations

import os
from dataclasses import dataclass, field

from mlbuffet.config import ConfigError, NatsConfig, check_heartbeat_interval
from mlbuffet.protocol.errors import BadRequestError
from mlbuffet.protocol.names import parse_model_name
from mlbuffet.roles.health_listener import HealthConfig
from mlbuffet.roles.memory import default_memory_budget

QUEUED_PER_INFLIGHT = 4
"""Default queue per place in flight: a few rounds of work, not an unbounded backlog."""


STALL_AFTER_S = 2.0
"""Least silence of a host with pending runs before it steps aside: far above a healthy
host's gap between finished runs (milliseconds), short beside a caller's deadline."""


def default_workers() -> int:
    return os.cpu_count() or 1


@dataclass(frozen=True, slots=True)
class ModelhostConfig:
    nats: NatsConfig = field(default_factory=NatsConfig)
    models: tuple[str, ...] | None = None
    """Names of the models to serve; None serves every model in the registry."""
    node_id: str | None = None
    """None: generated (role, host name and a random suffix)."""
    max_inflight: int = 64
    """Inference requests served at once (decoded, computed, answered)."""
    max_queued: int | None = None
    """Inference requests waiting, undecoded, for one of those places; beyond them a
    request is refused at once (503). None: four times `max_inflight`."""
    workers: int = field(default_factory=default_workers)
    """Threads running onnxruntime: one per core by default."""
    intra_op_threads: int = 1
    pinned_versions: int = 4
    """Non-default versions kept loaded per model (least recently used ones are unloaded)."""
    memory_budget: int = field(default_factory=default_memory_budget)
    """Bytes its loaded models may take, as measured when each loads; least recently used
    models are evicted to stay within it. Default: half the memory of the machine (or of
    its cgroup), see mlbuffet.roles.memory."""
    drain_timeout_s: float = 30.0
    stall_after_s: float = STALL_AFTER_S
    """With runs pending and none finished for this long (or 4 x the slowest recent run, if
    longer), the host leaves the queue groups until a run finishes (stall.py); 0: never."""
    registry_replicas: int | None = None
    """Copies of the registry buckets when this node creates them; None: 3 on a cluster of 3+ JetStream nodes, else 1."""
    heartbeat_interval_s: float = 2.0
    health: HealthConfig = field(default_factory=HealthConfig)
    """The optional /health/live and /health/ready listener (off unless a port is given)."""

    def __post_init__(self) -> None:
        if self.models is not None:
            try:
                for name in self.models:
                    parse_model_name(name)
            except BadRequestError as exc:
                raise ConfigError(f"--models: {exc.message}") from None
        for setting, value in (
            ("--max-inflight", self.max_inflight),
            ("--workers", self.workers),
            ("--intra-op-threads", self.intra_op_threads),
        ):
            if value < 1:
                raise ConfigError(f"{setting} must be at least 1")
        if self.max_queued is not None and self.max_queued < 0:
            raise ConfigError("--max-queued must not be negative")
        if self.memory_budget <= 0:
            raise ConfigError("--memory-budget must be above 0, as 512MiB")
        if self.pinned_versions < 0:
            raise ConfigError("--pinned-versions must not be negative")
        if self.drain_timeout_s < 0:
            raise ConfigError("--drain-timeout must not be negative")
        if not self.stall_after_s >= 0 or self.stall_after_s == float("inf"):
            raise ConfigError("--stall-after must be a number of seconds, 0 or more")
        check_heartbeat_interval(self.heartbeat_interval_s)

    @property
    def queue_limit(self) -> int:
        """Requests that may wait for a place in flight (`max_queued`, or its default)."""
        if self.max_queued is None:
            return QUEUED_PER_INFLIGHT * self.max_inflight
        return self.max_queued
