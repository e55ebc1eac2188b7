"""Settings of one gateway process."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from mlbuffet.apikeys import KeyRing, auth_summary, refuse_open_listen
from mlbuffet.config import ConfigError, NatsConfig, check_heartbeat_interval, is_loopback
from mlbuffet.mesh.hedging import HedgeConfig

MIB = 1024 * 1024

WHO = "the gateway"
"""How errors name this process: "the gateway has lost its NATS connection; retry"."""


@dataclass(frozen=True, slots=True)
class GatewayConfig:
    nats: NatsConfig = field(default_factory=NatsConfig)
    host: str = "127.0.0.1"
    port: int = 8002
    """0 picks a free port (announced on stdout)."""
    node_id: str | None = None
    request_timeout_s: float = 30.0
    """Deadline of an inference request that does not bring its own."""
    max_request_timeout_s: float = 300.0
    """Cap of the deadline a request asks for with the Mlbuffet-Timeout header."""
    max_inferences: int = 1024
    """Inference requests served at once; more are refused at once (503, Retry-After)."""
    hedging: HedgeConfig = field(default_factory=HedgeConfig)
    """When an inference request with no answer (or a 503) is sent to a host again."""
    no_responders_wait_s: float = 3.0
    """How long a prediction waits for a modelhost to take a model that none serves yet."""
    max_upload_bytes: int = 512 * MIB
    max_request_bytes: int = 64 * MIB
    """Limit of any other request body (JSON values, images)."""
    max_echo_items: int = 1000
    drain_timeout_s: float = 30.0
    tmp_dir: Path | None = None
    """Where uploads and downloads are spooled; None is the system's temporary folder."""
    access_log: bool = False
    registry_replicas: int | None = None
    """Copies of the registry buckets when this node creates them; None: 3 on a cluster of 3+ JetStream nodes, else 1."""
    heartbeat_interval_s: float = 2.0
    api_keys: KeyRing = field(default_factory=KeyRing)
    """Accepted API keys; none turns auth off (allowed on loopback only, or with `insecure`)."""
    insecure: bool = False
    """Listen beyond loopback without API keys (a warning is printed)."""
    cors_origins: tuple[str, ...] = ()
    """Browser origins allowed to call the API from another site; none: CORS off."""

    def __post_init__(self) -> None:
        if not 0 <= self.port <= 65535:
            raise ConfigError(f"--port {self.port}: not a TCP port")
        for setting, value in (
            ("--request-timeout", self.request_timeout_s),
            ("--max-request-timeout", self.max_request_timeout_s),
            ("--max-inferences", self.max_inferences),
            ("--max-upload", self.max_upload_bytes),
            ("--max-request", self.max_request_bytes),
        ):
            if value <= 0:
                raise ConfigError(f"{setting} must be positive")
        if self.no_responders_wait_s < 0 or self.drain_timeout_s < 0:
            raise ConfigError("waits and timeouts must not be negative")
        check_heartbeat_interval(self.heartbeat_interval_s)
        if not self.api_keys and not self.insecure and not is_loopback(self.host):
            raise ConfigError(refuse_open_listen(self.host))
        for origin in self.cors_origins:
            if origin == "*" or not origin.startswith(("http://", "https://")):
                raise ConfigError(
                    f"--cors-origin {origin!r}: give an origin like https://app.example.com ('*' is not allowed)"
                )

    @property
    def auth_line(self) -> str:
        """How the gateway is protected, for its start-up output."""
        return auth_summary(self.api_keys, not is_loopback(self.host))
