"""`mlbuffet nats`: the embedded nats-server alone (JetStream on), for roles started by hand."""

from __future__ import annotations

import argparse
import asyncio
import sys
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from mlbuffet.cli.embedded import EmbeddedNats
from mlbuffet.cli.process import Console, describe_exit
from mlbuffet.cli.up_config import DEFAULT_DATA_DIR
from mlbuffet.config import ConfigError, add_log_level_argument, env, env_int
from mlbuffet.natsserver import NatsServerConfig, NatsServerError
from mlbuffet.runner import StartupError, run_role


@dataclass(frozen=True, slots=True)
class NatsRoleConfig:
    server: NatsServerConfig
    verbose: bool = False
    """Show every line nats-server logs, not only its warnings and errors."""

    def __post_init__(self) -> None:
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
    add_log_level_argument(parser, environ, "debug shows every line nats-server logs")
    args = parser.parse_args(argv)
    server = NatsServerConfig(
        data_dir=Path(args.data_dir).expanduser().absolute(),
        host=args.host,
        port=args.nats_port,
    )
    config = NatsRoleConfig(server, verbose=args.log_level == "debug")
    return config, args.log_level


async def serve(config: NatsRoleConfig, stop: asyncio.Event) -> int:
    console = Console()
    server = EmbeddedNats(config.server, console, verbose=config.verbose)
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
