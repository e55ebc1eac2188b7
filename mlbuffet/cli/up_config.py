"""Settings of `mlbuffet up`: built once from MLBUFFET_* variables and flags, then passed in."""

from __future__ import annotations

import argparse
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from mlbuffet.apikeys import (
    ApiKeyError,
    KeyRing,
    add_api_key_arguments,
    api_keys_from,
    auth_summary,
    cors_origins_from,
    refuse_open_listen,
)
from mlbuffet.config import (
    LOG_LEVELS,
    ConfigError,
    NatsConfig,
    add_log_level_argument,
    env,
    env_float,
    env_int,
    is_loopback,
    size_setting,
    split_urls,
)
from mlbuffet.roles.memory import default_memory_budget

DEFAULT_DATA_DIR = "mlbuffet-data"


@dataclass(frozen=True, slots=True)
class UpConfig:
    data_dir: Path = Path(DEFAULT_DATA_DIR)
    """nats-server's config and JetStream data (the registry); unused with --nats."""
    host: str = "127.0.0.1"
    port: int = 8002
    """REST gateway port; 0 picks a free one (printed once up)."""
    nats_host: str = "127.0.0.1"
    nats_port: int = 4222
    """Embedded nats-server client port; 0 picks a free one."""
    nats_urls: tuple[str, ...] = ()
    """An existing NATS to use instead of starting one; empty starts the embedded server."""
    modelhosts: int = 2
    modelhost_memory: int | None = None
    """Each modelhost's memory budget in bytes; None: half this machine's memory, shared
    among the modelhosts (mlbuffet.roles.memory)."""
    metrics_port: int = 9091
    """Prometheus endpoint of the metrics actor; 0 picks a free one, -1 runs no metrics actor."""
    trainer: bool = True
    """Run one trainer (process backend unless MLBUFFET_TRAINER_BACKEND says otherwise)."""
    samples: bool = True
    """Register the sample models when the registry is created (first start)."""
    log_level: str = "info"
    drain_timeout_s: float = 10.0
    """On Ctrl-C, how long the gateway and modelhosts may finish in-flight requests."""
    startup_timeout_s: float = 60.0
    api_keys_file: str | None = None
    """Passed to the gateway; MLBUFFET_API_KEYS reaches it through the environment."""
    api_keys: KeyRing = field(default_factory=KeyRing)
    """Loaded here only to refuse an open REST port without keys before anything starts."""
    insecure: bool = False
    cors_origins: tuple[str, ...] = ()
    nats_auth: bool = False
    """Generated NATS users even on loopback (always on when NATS listens beyond it)."""
    search_path: str = ""
    """The PATH `up` was started with: the summary says how to reach the CLI where it does not."""

    @property
    def nats_credentials(self) -> bool:
        """Whether the embedded nats-server gets users with generated passwords."""
        return self.embedded_nats and (self.nats_auth or not is_loopback(self.nats_host))

    @property
    def auth_line(self) -> str:
        return auth_summary(self.api_keys, not is_loopback(self.host))

    @property
    def memory_budget(self) -> int:
        """What each modelhost that `up` starts may hold of models, in bytes."""
        if self.modelhost_memory is not None:
            return self.modelhost_memory
        return default_memory_budget(self.modelhosts)

    @property
    def embedded_nats(self) -> bool:
        return not self.nats_urls

    def __post_init__(self) -> None:
        for setting, port in (("--port", self.port), ("--nats-port", self.nats_port)):
            if not 0 <= port <= 65535:
                raise ConfigError(f"{setting} {port}: not a TCP port (0 picks a free one)")
        if not -1 <= self.metrics_port <= 65535:
            raise ConfigError(
                f"--metrics-port {self.metrics_port}: not a TCP port (0 picks a free one, -1 none)"
            )
        if self.modelhosts < 0:
            raise ConfigError("--modelhosts must not be negative")
        if self.modelhost_memory is not None and self.modelhost_memory <= 0:
            raise ConfigError("--modelhost-memory must be above 0, as 512MiB")
        if self.nats_urls:
            NatsConfig(urls=self.nats_urls)  # raises ConfigError naming --nats
        if self.log_level not in LOG_LEVELS:
            raise ConfigError(
                f"--log-level {self.log_level!r}: choose one of {', '.join(LOG_LEVELS)}"
            )
        if self.drain_timeout_s < 0:
            raise ConfigError("--drain-timeout must not be negative")
        if self.startup_timeout_s <= 0:
            raise ConfigError("--startup-timeout must be positive")
        if not self.api_keys and not self.insecure and not is_loopback(self.host):
            raise ConfigError(refuse_open_listen(self.host))


def _flag(environ: Mapping[str, str], name: str) -> bool:
    raw = (env(environ, name) or "").strip().lower()
    if raw in ("", "0", "false", "no"):
        return False
    if raw in ("1", "true", "yes"):
        return True
    raise ConfigError(f"MLBUFFET_{name}={raw!r}: use 1 or 0")


def parse_args(argv: Sequence[str] | None, environ: Mapping[str, str]) -> tuple[UpConfig, str]:
    parser = argparse.ArgumentParser(
        prog="mlbuffet up",
        description="Run nats-server, the REST gateway, modelhosts and a metrics actor on this machine until Ctrl-C.",
    )
    add = parser.add_argument
    add(
        "--data-dir",
        default=env(environ, "DATA_DIR", DEFAULT_DATA_DIR),
        help="where nats-server keeps the registry (MLBUFFET_DATA_DIR; default ./%(default)s)",
    )
    add(
        "--host",
        default=env(environ, "HOST", "127.0.0.1"),
        help="address of the REST API (MLBUFFET_HOST; default %(default)s)",
    )
    add(
        "--port",
        type=int,
        default=env_int(environ, "PORT", 8002),
        help="REST port, 0 for any free one (MLBUFFET_PORT; default %(default)s)",
    )
    add(
        "--nats-host",
        default=env(environ, "NATS_HOST", "127.0.0.1"),
        help="address of the embedded nats-server (MLBUFFET_NATS_HOST; default %(default)s)",
    )
    add(
        "--nats-port",
        type=int,
        default=env_int(environ, "NATS_PORT", 4222),
        help="port of the embedded nats-server, 0 for any free one (MLBUFFET_NATS_PORT; default %(default)s)",
    )
    add(
        "--nats",
        metavar="URL[,URL]",
        default=env(environ, "NATS"),
        help="use this existing NATS (with JetStream) instead of starting nats-server (MLBUFFET_NATS)",
    )
    add(
        "--modelhosts",
        type=int,
        metavar="N",
        default=env_int(environ, "MODELHOSTS", 2),
        help="modelhost processes to run (MLBUFFET_MODELHOSTS; default %(default)s)",
    )
    add(
        "--modelhost-memory",
        metavar="SIZE",
        default=env(environ, "MODELHOST_MEMORY"),
        help="memory budget of each modelhost, as 512MiB or 2GiB (MLBUFFET_MODELHOST_MEMORY; "
        "default: half this machine's memory, shared among the modelhosts)",
    )
    add(
        "--metrics-port",
        type=int,
        default=env_int(environ, "METRICS_PORT", 9091),
        help="Prometheus port of the metrics actor, 0 for any free one, -1 for no metrics actor "
        "(MLBUFFET_METRICS_PORT; default %(default)s)",
    )
    add(
        "--no-trainer",
        action="store_true",
        default=_flag(environ, "NO_TRAINER"),
        help="do not run a trainer, so no training jobs run (MLBUFFET_NO_TRAINER=1)",
    )
    add(
        "--no-samples",
        action="store_true",
        default=_flag(environ, "NO_SAMPLES"),
        help="do not register the sample models iris and diabetes on first start (MLBUFFET_NO_SAMPLES=1)",
    )
    add_log_level_argument(parser, environ, "of up and every child")
    add(
        "--drain-timeout",
        type=float,
        metavar="SECONDS",
        default=env_float(environ, "DRAIN_TIMEOUT", 10.0),
        help="on Ctrl-C, time to finish in-flight requests (MLBUFFET_DRAIN_TIMEOUT; default %(default)s)",
    )
    add(
        "--startup-timeout",
        type=float,
        metavar="SECONDS",
        default=env_float(environ, "STARTUP_TIMEOUT", 60.0),
        help="give up if a part is not ready by then (MLBUFFET_STARTUP_TIMEOUT; default %(default)s)",
    )
    add(
        "--nats-auth",
        action="store_true",
        default=_flag(environ, "NATS_AUTH"),
        help="give the embedded nats-server a user per role with generated passwords even on "
        "loopback (always done when --nats-host is beyond loopback) (MLBUFFET_NATS_AUTH=1)",
    )
    add_api_key_arguments(parser, environ)
    args = parser.parse_args(argv)
    try:
        api_keys = api_keys_from(args, environ)
    except ApiKeyError as exc:
        raise ConfigError(str(exc)) from None
    config = UpConfig(
        data_dir=Path(args.data_dir).expanduser().absolute(),
        host=args.host,
        port=args.port,
        nats_host=args.nats_host,
        nats_port=args.nats_port,
        nats_urls=split_urls(args.nats) if args.nats else (),
        modelhosts=args.modelhosts,
        modelhost_memory=size_setting("--modelhost-memory", args.modelhost_memory),
        metrics_port=args.metrics_port,
        trainer=not args.no_trainer,
        samples=not args.no_samples,
        log_level=args.log_level,
        drain_timeout_s=args.drain_timeout,
        startup_timeout_s=args.startup_timeout,
        api_keys_file=str(Path(args.api_keys).absolute()) if args.api_keys else None,
        api_keys=api_keys,
        insecure=args.insecure,
        cors_origins=cors_origins_from(args, environ),
        nats_auth=args.nats_auth,
        search_path=environ.get("PATH", ""),
    )
    return config, config.log_level
