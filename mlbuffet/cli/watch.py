"""What `mlbuffet status` and `mlbuffet events` share: their flags and their settings."""

from __future__ import annotations

import argparse
from collections.abc import Mapping
from dataclasses import dataclass, field

from mlbuffet.config import (
    ConfigError,
    NatsConfig,
    add_log_level_argument,
    add_nats_arguments,
    env,
    env_float,
)
from mlbuffet.observe.event_history import Since

CONNECT_WAIT_S = 3.0
"""A command someone typed should not wait for NATS as long as a server role does."""


@dataclass(frozen=True, slots=True)
class WatchConfig:
    nats: NatsConfig = field(default_factory=NatsConfig)
    json: bool = False
    """Machine-readable output: one JSON document (status) or one per line (events)."""
    timeout_s: float = 3.0
    """status: how long to wait for the metrics actor."""
    count: int | None = None
    """events: stop after this many."""
    since: Since | None = None
    """events: replay the kept events from here first (None: only what happens from now)."""

    def __post_init__(self) -> None:
        if self.timeout_s <= 0:
            raise ConfigError("--timeout must be positive")
        if self.count is not None and self.count < 1:
            raise ConfigError("--count must be at least 1")


def watch_parser(
    prog: str, description: str, environ: Mapping[str, str]
) -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog=prog, description=description)
    add_nats_arguments(parser, environ)
    parser.set_defaults(nats_connect_wait=env_float(environ, "NATS_CONNECT_WAIT", CONNECT_WAIT_S))
    parser.add_argument("--json", action="store_true", help="print JSON instead of text")
    add_log_level_argument(parser, environ, "of this command")
    # A command's output is its answer: connection chatter only when asked for.
    parser.set_defaults(log_level=(env(environ, "LOG_LEVEL") or "warning").lower())
    return parser
