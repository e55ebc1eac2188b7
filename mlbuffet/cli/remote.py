"""The options every command that talks to a running MLBuffet shares, and how it runs.

`--url` (the default) goes through the REST gateway; `--nats URL` talks to the
mesh directly with mlbuffet.Client and the usual NATS credential flags.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
from collections.abc import Awaitable, Callable, Mapping, Sequence

from mlbuffet.cli.output import Exit, fail
from mlbuffet.cli.transport import Transport
from mlbuffet.config import ConfigError, add_nats_arguments, env, env_float, nats_config_from

DEFAULT_URL = "http://127.0.0.1:8002"
DEFAULT_TIMEOUT_S = 30.0
CONNECT_WAIT_S = 2.0
"""A command gives up on NATS sooner than a long-running role does."""


def parse(parser: argparse.ArgumentParser, argv: Sequence[str] | None) -> argparse.Namespace | int:
    """The parsed arguments, or the exit status argparse chose (2 for usage, 0 for --help)."""
    try:
        return parser.parse_args(argv)
    except SystemExit as exc:
        return exc.code if isinstance(exc.code, int) else Exit.USAGE


def usage_error(parser: argparse.ArgumentParser, message: str) -> int:
    parser.print_usage(sys.stderr)
    print(f"{parser.prog}: error: {message}", file=sys.stderr)
    return int(Exit.USAGE)


def add_remote_arguments(parser: argparse.ArgumentParser, environ: Mapping[str, str]) -> None:
    parser.add_argument(
        "--url",
        default=env(environ, "URL", DEFAULT_URL),
        help="the REST gateway, used unless --nats is given (MLBUFFET_URL; default %(default)s)",
    )
    parser.add_argument("--json", action="store_true", help="print JSON, for scripts")
    parser.add_argument(
        "--timeout",
        type=float,
        metavar="SECONDS",
        default=env_float(environ, "TIMEOUT", DEFAULT_TIMEOUT_S),
        help="give up on an answer after this long (MLBUFFET_TIMEOUT; default %(default)s)",
    )
    add_nats_arguments(parser, environ)
    # --nats chooses the transport, so it has no default here; the other flags keep theirs.
    parser.set_defaults(
        nats=None, nats_connect_wait=env_float(environ, "NATS_CONNECT_WAIT", CONNECT_WAIT_S)
    )


async def open_transport(args: argparse.Namespace) -> Transport:
    if args.nats is None:
        from mlbuffet.cli.rest_transport import RestTransport

        return RestTransport(args.url, args.timeout)
    from mlbuffet.cli.nats_transport import NatsTransport

    return await NatsTransport.open(nats_config_from(args), args.timeout)


Command = Callable[[Transport], Awaitable[int | None]]
"""What a command does once its transport is open; an exit status other than 0, if it has one."""


def command_main(
    parser: argparse.ArgumentParser,
    argv: Sequence[str] | None,
    prepare: Callable[[argparse.Namespace], Command],
) -> int:
    """Parse, `prepare` (which raises BadRequestError or ValueError for a bad command line:
    exit 2, nothing sent), then run the command; MLBuffet errors become their exit status."""
    from mlbuffet.protocol.errors import BadRequestError, MLBuffetError

    args = parse(parser, argv)
    if isinstance(args, int):
        return args
    if args.timeout <= 0:
        return usage_error(parser, "--timeout must be positive")
    try:
        command = prepare(args)
    except BadRequestError as exc:
        return usage_error(parser, exc.message)
    except ValueError as exc:
        return usage_error(parser, str(exc))

    async def go() -> int | None:
        transport = await open_transport(args)
        try:
            return await command(transport)
        finally:
            await transport.close()

    try:
        code = asyncio.run(go())
    except ConfigError as exc:
        return usage_error(parser, str(exc))
    except MLBuffetError as exc:
        return int(fail(exc, args.json))
    except KeyboardInterrupt:
        return 130
    return int(Exit.OK if code is None else code)
