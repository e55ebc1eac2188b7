"""Settings of one metrics actor process."""

from __future__ import annotations

from dataclasses import dataclass, field

from actors.metrics.series import SAMPLE_INTERVAL_S
from mlbuffet.config import ConfigError, NatsConfig, check_heartbeat_interval

DEFAULT_METRICS_PORT = 9091
"""As the original MLBuffet's Prometheus endpoint."""


@dataclass(frozen=True, slots=True)
class MetricsConfig:
    nats: NatsConfig = field(default_factory=NatsConfig)
    node_id: str | None = None
    metrics_host: str = "127.0.0.1"
    metrics_port: int = DEFAULT_METRICS_PORT
    """Prometheus endpoint (GET /metrics); 0 picks a free port (announced on stdout)."""
    down_after: int = 3
    """Heartbeat intervals a node may miss before it is declared down."""
    heartbeat_interval_s: float = 2.0
    """This actor's own heartbeat."""
    forget_after_s: float = 600.0
    """A node down this long leaves the cluster view."""
    drain_timeout_s: float = 30.0
    sample_interval_s: float = SAMPLE_INTERVAL_S
    """How often the cluster is sampled for the console's charts (the last 15 minutes are kept)."""

    def __post_init__(self) -> None:
        if not 0 <= self.metrics_port <= 65535:
            raise ConfigError(f"--metrics-port {self.metrics_port}: not a TCP port")
        if self.down_after < 1:
            raise ConfigError("--down-after must be at least 1 (missed heartbeats)")
        if self.forget_after_s <= 0 or self.drain_timeout_s < 0:
            raise ConfigError("--forget-after must be positive, --drain-timeout not negative")
        check_heartbeat_interval(self.heartbeat_interval_s)
        if not 0.05 <= self.sample_interval_s <= 60:
            raise ConfigError("sample_interval_s must be from 0.05 to 60 seconds")
