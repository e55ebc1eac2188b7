"""`mlbuffet gateway`: argv -> GatewayConfig -> the REST gateway until SIGTERM."""

from __future__ import annotations

import argparse
import asyncio
import errno
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path

from aiohttp import web
from aiohttp.log import access_logger

from gateway.app import create_app
from gateway.config import MIB, GatewayConfig
from mlbuffet.apikeys import ApiKeyError, add_api_key_arguments, api_keys_from, cors_origins_from
from mlbuffet.config import (
    ConfigError,
    add_actor_arguments,
    add_nats_arguments,
    env,
    env_float,
    env_int,
    nats_config_from,
)
from mlbuffet.mesh.hedging import add_hedge_arguments, hedge_config_from
from mlbuffet.roles.node_ids import new_node_id
from mlbuffet.roles.ready_lines import gateway_ready
from mlbuffet.roles.runner import StartupError, announce, run_role


def parse_args(argv: Sequence[str] | None, environ: Mapping[str, str]) -> tuple[GatewayConfig, str]:
    parser = argparse.ArgumentParser(
        prog="mlbuffet gateway", description="The MLBuffet REST gateway."
    )
    add_nats_arguments(parser, environ)
    parser.add_argument(
        "--host",
        default=env(environ, "HOST", "127.0.0.1"),
        help="address to listen on (default %(default)s)",
    )
    parser.add_argument(
        "--port",
        type=int,
        default=env_int(environ, "PORT", 8002),
        help="TCP port; 0 picks a free one (default %(default)s)",
    )
    parser.add_argument(
        "--request-timeout",
        type=float,
        metavar="SECONDS",
        default=env_float(environ, "REQUEST_TIMEOUT", 30.0),
        help="deadline of an inference request (default %(default)s)",
    )
    add_hedge_arguments(parser, environ)
    parser.add_argument(
        "--max-request-timeout",
        type=float,
        metavar="SECONDS",
        default=env_float(environ, "MAX_REQUEST_TIMEOUT", 300.0),
        help="longest deadline a request may ask for with Mlbuffet-Timeout (default %(default)s)",
    )
    parser.add_argument(
        "--max-inferences",
        type=int,
        default=env_int(environ, "MAX_INFERENCES", 1024),
        help="inference requests served at once; more get 503 (default %(default)s)",
    )
    parser.add_argument(
        "--max-upload-mib",
        type=int,
        default=env_int(environ, "MAX_UPLOAD_MIB", 512),
        help="largest model file accepted, in MiB (default %(default)s)",
    )
    parser.add_argument(
        "--max-request-mib",
        type=int,
        default=env_int(environ, "MAX_REQUEST_MIB", 64),
        help="largest other request body, in MiB (default %(default)s)",
    )
    parser.add_argument(
        "--tmp-dir",
        default=env(environ, "TMP_DIR"),
        help="where uploads are spooled (default: the system's temporary folder)",
    )
    parser.add_argument("--access-log", action="store_true", help="log every request")
    add_actor_arguments(parser, environ, "gateway")
    add_api_key_arguments(parser, environ)
    args = parser.parse_args(argv)
    try:
        api_keys = api_keys_from(args, environ)
    except ApiKeyError as exc:
        raise ConfigError(str(exc)) from None
    config = GatewayConfig(
        nats=nats_config_from(args),
        host=args.host,
        port=args.port,
        node_id=args.node_id,
        request_timeout_s=args.request_timeout,
        max_request_timeout_s=args.max_request_timeout,
        max_inferences=args.max_inferences,
        hedging=hedge_config_from(args),
        max_upload_bytes=args.max_upload_mib * MIB,
        max_request_bytes=args.max_request_mib * MIB,
        drain_timeout_s=args.drain_timeout,
        tmp_dir=Path(args.tmp_dir) if args.tmp_dir else None,
        access_log=args.access_log,
        heartbeat_interval_s=args.heartbeat_interval,
        api_keys=api_keys,
        insecure=args.insecure,
        cors_origins=cors_origins_from(args, environ),
    )
    return config, args.log_level


async def serve(config: GatewayConfig, stop: asyncio.Event) -> int:
    node_id = config.node_id or new_node_id("gateway")
    app = create_app(config, node_id)
    runner = web.AppRunner(
        app,
        handle_signals=False,
        access_log=access_logger if config.access_log else None,
        shutdown_timeout=config.drain_timeout_s,
        # A client that hangs up cancels its request: it would otherwise hold
        # a handler (and a shutdown) until its deadline.
        handler_cancellation=True,
    )
    await runner.setup()
    try:
        site = web.TCPSite(runner, config.host, config.port)
        try:
            await site.start()
        except OSError as exc:
            if exc.errno == errno.EADDRINUSE:
                raise StartupError(
                    f"port {config.port} on {config.host} is already in use (gateway)"
                ) from None
            raise StartupError(
                f"cannot listen on {config.host}:{config.port}: {exc.strerror}"
            ) from None
        port = _bound_port(runner, config.port)
        host = f"[{config.host}]" if ":" in config.host else config.host
        announce(f"gateway {node_id} auth: {config.auth_line}")
        announce(gateway_ready(node_id, f"http://{host}:{port}"))
        await stop.wait()
    finally:
        # Stops accepting, lets in-flight requests finish (shutdown_timeout), then
        # runs the cleanup contexts: NATS is drained last.
        await runner.cleanup()
    return 0


def _bound_port(runner: web.AppRunner, configured: int) -> int:
    for address in runner.addresses:
        if isinstance(address, tuple) and len(address) >= 2:
            return int(address[1])
    return configured


def main(argv: Sequence[str] | None = None) -> int:
    return run_role(argv, parse_args, serve)


if __name__ == "__main__":
    sys.exit(main())
