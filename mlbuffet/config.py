"""Settings every role shares: how to reach NATS, and how settings are read.

Each process builds one frozen config once in its `main(argv)`: defaults come
from `MLBUFFET_*` environment variables, command-line flags override them, and
`__post_init__` rejects a bad value with a message that names the setting.
Nothing below `main` reads the environment.
"""

from __future__ import annotations

import argparse
import ipaddress
import os
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from mlbuffet.protocol.errors import BadRequestError
from mlbuffet.protocol.names import parse_node_id
from mlbuffet.protocol.sizes import parse_size

DEFAULT_NATS_URL = "nats://127.0.0.1:4222"
LOG_LEVELS = ("debug", "info", "warning", "error", "critical")
NATS_SCHEMES = ("nats://", "tls://", "ws://", "wss://")
MIN_HEARTBEAT_INTERVAL_S = 0.05
_INBOX_PREFIX = re.compile(r"[A-Za-z0-9_-]+(\.[A-Za-z0-9_-]+)*")


class ConfigError(ValueError):
    """A setting has a value that cannot work; the message names the setting."""


def is_loopback(host: str) -> bool:
    """True for an address only this machine can reach (127.0.0.0/8, ::1, localhost)."""
    if host.lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False  # a host name: it may resolve to anything


def split_urls(raw: str) -> tuple[str, ...]:
    return tuple(u.strip() for u in raw.split(",") if u.strip())


@dataclass(frozen=True, slots=True)
class NatsConfig:
    """How a role connects to the NATS cluster."""

    urls: tuple[str, ...] = (DEFAULT_NATS_URL,)
    user: str | None = None
    password: str | None = None
    token: str | None = None
    creds_file: str | None = None
    tls_ca_file: str | None = None
    tls_cert_file: str | None = None
    tls_key_file: str | None = None
    nkey_seed_file: str | None = None
    """A file holding an NKEY seed (SU...): the server challenges, the seed signs."""
    inbox_prefix: str | None = None
    """Subject prefix of this client's reply inboxes; None: `_INBOX.<user>` with a user
    name (what deploy/nats/auth.conf allows each role), else `_INBOX`."""
    connect_wait_s: float = 10.0
    """How long to keep trying the first connection (NATS may start after us)."""

    def __post_init__(self) -> None:
        if not self.urls:
            raise ConfigError("--nats: give at least one NATS URL")
        for url in self.urls:
            if not url.startswith(NATS_SCHEMES):
                raise ConfigError(f"--nats: {url!r} is not a NATS URL (nats://host:port)")
        if self.connect_wait_s < 0:
            raise ConfigError("--nats-connect-wait must not be negative")
        if bool(self.tls_cert_file) != bool(self.tls_key_file):
            raise ConfigError("--nats-tls-cert and --nats-tls-key go together")
        if self.password and not self.user:
            raise ConfigError("--nats-password needs --nats-user")
        if self.inbox_prefix is not None and not _INBOX_PREFIX.fullmatch(self.inbox_prefix):
            raise ConfigError(
                f"--nats-inbox-prefix {self.inbox_prefix!r}: dot-separated words, no wildcards"
            )

    @property
    def reply_prefix(self) -> str:
        """The inbox prefix this client uses (see `inbox_prefix`)."""
        if self.inbox_prefix:
            return self.inbox_prefix
        if self.user and _INBOX_PREFIX.fullmatch(self.user) and "." not in self.user:
            return f"_INBOX.{self.user}"
        return "_INBOX"  # no user, or one that is no single subject token

    def environment(self) -> dict[str, str]:
        """The secrets of this config as MLBUFFET_* variables: how `up` hands them to a child
        (a command line can be read by every user of the machine)."""
        secrets = {"NATS_PASSWORD": self.password, "NATS_TOKEN": self.token}
        return {f"MLBUFFET_{name}": value for name, value in secrets.items() if value}


def env(environ: Mapping[str, str], name: str, default: str | None = None) -> str | None:
    """The value of MLBUFFET_<name>, or `default`."""
    return environ.get(f"MLBUFFET_{name}", default)


def env_int(environ: Mapping[str, str], name: str, default: int) -> int:
    raw = env(environ, name)
    if raw is None:
        return default
    try:
        return int(raw)
    except ValueError:
        raise ConfigError(f"MLBUFFET_{name}={raw!r} is not an integer") from None


def env_float(environ: Mapping[str, str], name: str, default: float) -> float:
    raw = env(environ, name)
    if raw is None:
        return default
    try:
        return float(raw)
    except ValueError:
        raise ConfigError(f"MLBUFFET_{name}={raw!r} is not a number") from None


def size_setting(setting: str, raw: str | None) -> int | None:
    """Bytes of a memory size given as text (512MiB); ConfigError names `setting`."""
    if raw is None:
        return None
    try:
        return parse_size(raw)
    except ValueError as exc:
        raise ConfigError(f"{setting}: {exc}") from None


def add_nats_arguments(parser: argparse.ArgumentParser, environ: Mapping[str, str]) -> None:
    """The flags of NatsConfig, with defaults from the environment."""
    group = parser.add_argument_group("NATS connection")
    group.add_argument(
        "--nats",
        metavar="URL[,URL]",
        default=env(environ, "NATS", DEFAULT_NATS_URL),
        help="NATS server URLs, comma separated (MLBUFFET_NATS; default %(default)s)",
    )
    group.add_argument("--nats-user", default=env(environ, "NATS_USER"))
    group.add_argument(
        "--nats-password",
        default=env(environ, "NATS_PASSWORD"),
        help="prefer MLBUFFET_NATS_PASSWORD: a command line is visible to every local user",
    )
    group.add_argument(
        "--nats-token", default=env(environ, "NATS_TOKEN"), help="prefer MLBUFFET_NATS_TOKEN"
    )
    group.add_argument("--nats-creds", default=env(environ, "NATS_CREDS"), help="a .creds file")
    group.add_argument("--nats-tls-ca", default=env(environ, "NATS_TLS_CA"))
    group.add_argument("--nats-tls-cert", default=env(environ, "NATS_TLS_CERT"))
    group.add_argument("--nats-tls-key", default=env(environ, "NATS_TLS_KEY"))
    group.add_argument(
        "--nats-nkey",
        metavar="SEED_FILE",
        default=env(environ, "NATS_NKEY"),
        help="a file with this role's NKEY seed (MLBUFFET_NATS_NKEY)",
    )
    group.add_argument(
        "--nats-inbox-prefix",
        default=env(environ, "NATS_INBOX_PREFIX"),
        help="reply inbox prefix (default _INBOX.<user> with --nats-user, else _INBOX)",
    )
    group.add_argument(
        "--nats-connect-wait",
        type=float,
        metavar="SECONDS",
        default=env_float(environ, "NATS_CONNECT_WAIT", 10.0),
        help="keep trying the first connection this long (default %(default)s)",
    )


def add_log_level_argument(
    parser: argparse.ArgumentParser, environ: Mapping[str, str], what: str
) -> None:
    """--log-level in any case (MLBUFFET_LOG_LEVEL=INFO works), checked against LOG_LEVELS."""
    parser.add_argument(
        "--log-level",
        type=str.lower,
        default=env(environ, "LOG_LEVEL", "info"),
        choices=LOG_LEVELS,
        help=f"{what} (MLBUFFET_LOG_LEVEL; default %(default)s)",
    )


def _node_id(raw: str) -> str:
    """A node id goes into subjects (heartbeats, events): refuse one that is not a token."""
    try:
        return parse_node_id(raw)
    except BadRequestError as exc:
        raise argparse.ArgumentTypeError(exc.message) from None


def add_actor_arguments(
    parser: argparse.ArgumentParser, environ: Mapping[str, str], role: str
) -> None:
    """The flags every long-running role shares: its node id, how long it drains, its log level."""
    parser.add_argument(
        "--node-id",
        type=_node_id,
        default=env(environ, "NODE_ID"),
        help=f"name of this {role} in replies and events (MLBUFFET_NODE_ID; default: generated)",
    )
    parser.add_argument(
        "--drain-timeout",
        type=float,
        metavar="SECONDS",
        default=env_float(environ, "DRAIN_TIMEOUT", 30.0),
        help="on SIGTERM, time to finish in-flight requests (MLBUFFET_DRAIN_TIMEOUT; default %(default)s)",
    )
    parser.add_argument(
        "--heartbeat-interval",
        type=float,
        metavar="SECONDS",
        default=env_float(environ, "HEARTBEAT_INTERVAL", 2.0),
        help="seconds between heartbeats (MLBUFFET_HEARTBEAT_INTERVAL; default %(default)s)",
    )
    add_log_level_argument(parser, environ, f"of this {role}")


def check_heartbeat_interval(seconds: float) -> None:
    if not seconds >= MIN_HEARTBEAT_INTERVAL_S:
        raise ConfigError(f"--heartbeat-interval must be at least {MIN_HEARTBEAT_INTERVAL_S}s")


def nats_config_from(args: argparse.Namespace) -> NatsConfig:
    return NatsConfig(
        urls=split_urls(args.nats),
        user=args.nats_user,
        password=args.nats_password,
        token=args.nats_token,
        creds_file=args.nats_creds,
        tls_ca_file=args.nats_tls_ca,
        tls_cert_file=args.nats_tls_cert,
        tls_key_file=args.nats_tls_key,
        nkey_seed_file=args.nats_nkey,
        inbox_prefix=args.nats_inbox_prefix,
        connect_wait_s=args.nats_connect_wait,
    )


def nats_arguments(config: NatsConfig) -> list[str]:
    """Command-line flags that give a child process the same NATS settings, but its secrets:
    those go in its environment (`config.environment()`), where other users cannot read them."""
    args = ["--nats", ",".join(config.urls)]
    optional: dict[str, Any] = {
        "--nats-user": config.user,
        "--nats-creds": config.creds_file,
        "--nats-tls-ca": config.tls_ca_file,
        "--nats-tls-cert": config.tls_cert_file,
        "--nats-tls-key": config.tls_key_file,
        "--nats-nkey": config.nkey_seed_file,
        "--nats-inbox-prefix": config.inbox_prefix,
    }
    for flag, value in optional.items():
        if value:
            args += [flag, str(value)]
    return args


def default_environ() -> Mapping[str, str]:
    """The process environment; only `main` functions call this."""
    return os.environ
