"""`mlbuffet nats`: the embedded nats-server alone (JetStream on), for roles started by hand."""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import sys
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from mlbuffet.cli.embedded import EmbeddedNats
from mlbuffet.cli.process import Console, describe_exit
from mlbuffet.cli.up_config import DEFAULT_DATA_DIR
from mlbuffet.config import ConfigError, add_log_level_argument, env, env_int, is_loopback
from mlbuffet.natsd.server import NatsServerConfig, NatsServerError
from mlbuffet.roles.runner import StartupError, run_role


@dataclass(frozen=True, slots=True)
class NatsRoleConfig:
    server: NatsServerConfig
    verbose: bool = False
    """Show every line nats-server logs, not only its warnings and errors."""
    includes: tuple[Path, ...] = ()
    """nats-server configuration files added to the generated one (users, tls)."""
    insecure: bool = False
    """Listen beyond loopback with no included configuration (no users)."""

    def __post_init__(self) -> None:
        if not self.includes and not self.insecure and not is_loopback(self.server.host):
            raise ConfigError(
                f"--host {self.server.host} listens beyond loopback, but nats-server would have "
                "no users: give --include deploy/nats/auth.conf (with the "
                "MLBUFFET_NATS_<ROLE>_PASSWORD variables set), or --insecure"
            )
        for path in self.includes:
            if not path.is_file():
                raise ConfigError(f"--include {path}: no such file")
        if not 0 <= self.server.port <= 65535:
            raise ConfigError(
                f"--nats-port {self.server.port}: not a TCP port (0 picks a free one)"
            )


def parse_args(
    argv: Sequence[str] | None, environ: Mapping[str, str]
) -> tuple[NatsRoleConfig, str]:
    parser = argparse.ArgumentParser(
        prog="mlbuffet nats",
        description="Run the embedded nats-server (JetStream on) until Ctrl-C.",
    )
    parser.add_argument(
        "--data-dir",
        default=env(environ, "DATA_DIR", DEFAULT_DATA_DIR),
        help="JetStream data and the generated nats-server.conf (MLBUFFET_DATA_DIR; default ./%(default)s)",
    )
    parser.add_argument(
        "--host",
        default=env(environ, "NATS_HOST", "127.0.0.1"),
        help="address to listen on (MLBUFFET_NATS_HOST; default %(default)s)",
    )
    parser.add_argument(
        "--nats-port",
        type=int,
        default=env_int(environ, "NATS_PORT", 4222),
        help="client port, 0 for any free one (MLBUFFET_NATS_PORT; default %(default)s)",
    )
    parser.add_argument(
        "--include",
        action="append",
        metavar="FILE",
        default=[],
        help="a nats-server config file to include, e.g. deploy/nats/auth.conf (users per "
        "role) or a tls block; repeatable (docs/security.md)",
    )
    parser.add_argument(
        "--insecure",
        action="store_true",
        help="allow a --host beyond loopback without users",
    )
    add_log_level_argument(parser, environ, "debug shows every line nats-server logs")
    args = parser.parse_args(argv)
    server = NatsServerConfig(
        data_dir=Path(args.data_dir).expanduser().absolute(),
        host=args.host,
        port=args.nats_port,
    )
    config = NatsRoleConfig(
        server,
        verbose=args.log_level == "debug",
        includes=tuple(Path(p).expanduser().absolute() for p in args.include),
        insecure=args.insecure,
    )
    return config, args.log_level


def with_includes(config: NatsRoleConfig) -> NatsServerConfig:
    """nats-server resolves `include` relative to its config file: copy each file next to it."""
    server = config.server
    lines = []
    server.data_dir.mkdir(parents=True, exist_ok=True)
    for number, path in enumerate(config.includes, start=1):
        copy = server.data_dir / f"include-{number}-{path.name}"
        copy.touch(mode=0o600)
        copy.write_bytes(path.read_bytes())
        lines.append(f'include "{copy.name}"\n')
    return dataclasses.replace(server, extra=server.extra + "".join(lines))


async def serve(config: NatsRoleConfig, stop: asyncio.Event) -> int:
    console = Console()
    server = EmbeddedNats(with_includes(config), console, verbose=config.verbose)
    try:
        url = await server.launch()
    except (NatsServerError, OSError) as exc:
        raise StartupError(str(exc)) from None
    console.say(f"nats-server listening on {url} (JetStream data in {config.server.data_dir})")
    stopping = asyncio.ensure_future(stop.wait())
    exited = asyncio.ensure_future(server.wait())
    try:
        await asyncio.wait({stopping, exited}, return_when=asyncio.FIRST_COMPLETED)
        if exited.done():
            console.warn(f"mlbuffet nats: nats-server stopped ({describe_exit(exited.result())})")
            return 1
        return 0
    finally:
        stopping.cancel()
        await server.stop()
        exited.cancel()


def main(argv: Sequence[str] | None = None) -> int:
    return run_role(argv, parse_args, serve)


if __name__ == "__main__":
    sys.exit(main())
