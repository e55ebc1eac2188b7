"""Settings of one trainer process."""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

from mlbuffet.config import ConfigError, NatsConfig, check_heartbeat_interval
from mlbuffet.roles.health_listener import HealthConfig

BACKENDS = ("process", "docker")
GIB = 1024**3
DEFAULT_DOCKER_IMAGE = "python:3.12-slim"


def default_cache_dir() -> Path:
    """Where the process backend keeps its virtualenvs: ~/.cache/mlbuffet/trainer."""
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "mlbuffet" / "trainer"


@dataclass(frozen=True, slots=True)
class DockerConfig:
    """How the docker backend reaches its daemon and what it runs jobs in."""

    url: str | None = None
    """unix:///var/run/docker.sock, tcp://host:2376, ...; None: DOCKER_HOST or the local socket."""
    tls_ca_file: str | None = None
    tls_cert_file: str | None = None
    tls_key_file: str | None = None
    image: str = DEFAULT_DOCKER_IMAGE
    install_network: str = "bridge"
    """Docker network of the dependency step (the script's step never has one)."""
    user: str = "65534:65534"
    """The user the script runs as: nobody, not root."""

    def __post_init__(self) -> None:
        if bool(self.tls_cert_file) != bool(self.tls_key_file):
            raise ConfigError("--docker-tls-cert and --docker-tls-key go together")
        if not self.image:
            raise ConfigError("--docker-image must not be empty")


@dataclass(frozen=True, slots=True)
class TrainerConfig:
    nats: NatsConfig = field(default_factory=NatsConfig)
    node_id: str | None = None
    """Keep it stable across restarts (as `mlbuffet up` does): a restarted trainer
    then fails the jobs it was running at once, instead of after their lease."""
    backend: str = "process"
    max_jobs: int = 1
    """Jobs this trainer runs at once; the rest wait, queued, in the jobs bucket."""
    work_dir: Path | None = None
    """Where jobs' folders are made; None: the system's temporary folder."""
    cache_dir: Path = field(default_factory=default_cache_dir)
    default_timeout_s: float = 600.0
    max_timeout_s: float = 6 * 3600.0
    install_timeout_s: float = 900.0
    """Wall-clock limit of installing a job's requirements."""
    memory_bytes: int = 4 * GIB
    """Memory limit of the script (address space in the process backend)."""
    cpus: float = 1.0
    """CPUs of the script: docker's --cpus; CPU seconds = cpus x timeout in the process backend."""
    system_site_packages: bool = False
    """Process backend: let job virtualenvs see the trainer's Python's packages."""
    docker: DockerConfig = field(default_factory=DockerConfig)
    drain_timeout_s: float = 30.0
    registry_replicas: int | None = None
    heartbeat_interval_s: float = 2.0
    health: HealthConfig = field(default_factory=HealthConfig)
    """The optional /health/live and /health/ready listener (off unless a port is given)."""

    def __post_init__(self) -> None:
        if self.backend not in BACKENDS:
            raise ConfigError(f"--backend {self.backend!r}: choose one of {', '.join(BACKENDS)}")
        check_heartbeat_interval(self.heartbeat_interval_s)
        if self.max_jobs < 1:
            raise ConfigError("--max-jobs must be at least 1")
        for setting, value in (
            ("--default-timeout", self.default_timeout_s),
            ("--max-timeout", self.max_timeout_s),
            ("--install-timeout", self.install_timeout_s),
            ("--memory", self.memory_bytes),
            ("--cpus", self.cpus),
        ):
            if value <= 0:
                raise ConfigError(f"{setting} must be positive")
        if self.default_timeout_s > self.max_timeout_s:
            raise ConfigError("--default-timeout must not exceed --max-timeout")
        if self.drain_timeout_s < 0:
            raise ConfigError("--drain-timeout must not be negative")
