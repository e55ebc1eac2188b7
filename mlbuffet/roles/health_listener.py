"""An optional HTTP listener for an orchestrator's probes: GET /health/live and /health/ready.

Kubernetes (or a load balancer, or Nomad) asks a process over HTTP whether it lives and whether
it is ready. The gateway answers on its REST port; the roles without one (modelhost, trainer)
get this small listener, off unless --health-port is given. `live` is 200 while the event loop
answers; `ready` is 200, or 503 with the reason as plain text, which is what a person reading
`kubectl describe pod` needs. What "ready" means is the role's business: it passes a function
that returns None when ready, else why not.
"""

from __future__ import annotations

import argparse
import errno
from collections.abc import AsyncIterator, Callable, Mapping
from contextlib import asynccontextmanager
from dataclasses import dataclass

from aiohttp import web

from mlbuffet.config import ConfigError, env, env_int
from mlbuffet.roles.runner import StartupError, announce

LIVE_PATH = "/health/live"
READY_PATH = "/health/ready"

UnreadyReason = Callable[[], str | None]
"""None when the process is ready, else a sentence that says why it is not."""


@dataclass(frozen=True, slots=True)
class HealthConfig:
    host: str = "127.0.0.1"
    port: int | None = None
    """None: no listener; 0: any free port (announced)."""

    def __post_init__(self) -> None:
        if self.port is not None and not 0 <= self.port <= 65535:
            raise ConfigError(f"--health-port {self.port} is not a TCP port (0-65535)")


def add_health_arguments(parser: argparse.ArgumentParser, environ: Mapping[str, str]) -> None:
    group = parser.add_argument_group("health endpoints for orchestrators (docs/operations.md)")
    port = env(environ, "HEALTH_PORT")
    group.add_argument(
        "--health-port",
        type=int,
        default=env_int(environ, "HEALTH_PORT", 0) if port else None,
        help="serve GET /health/live and /health/ready on this port, 0 for any free one "
        "(MLBUFFET_HEALTH_PORT; default: off)",
    )
    group.add_argument(
        "--health-host",
        default=env(environ, "HEALTH_HOST", "127.0.0.1"),
        help="address of the health listener; 0.0.0.0 in a container, for the kubelet "
        "(MLBUFFET_HEALTH_HOST; default %(default)s)",
    )


def health_config_from(args: argparse.Namespace) -> HealthConfig:
    return HealthConfig(host=args.health_host, port=args.health_port)


class HealthServer:
    """The listener; `start` returns the bound port."""

    def __init__(self, config: HealthConfig, unready_reason: UnreadyReason) -> None:
        self.config = config
        self.unready_reason = unready_reason
        self._runner: web.AppRunner | None = None

    async def start(self) -> int:
        app = web.Application()
        app.router.add_get(LIVE_PATH, self._live)
        app.router.add_get(READY_PATH, self._ready)
        runner = web.AppRunner(app, handle_signals=False, access_log=None)
        await runner.setup()
        self._runner = runner
        site = web.TCPSite(runner, self.config.host, self.config.port or 0)
        try:
            await site.start()
        except OSError as exc:
            await self.stop()
            where = f"{self.config.host}:{self.config.port}"
            if exc.errno == errno.EADDRINUSE:
                raise StartupError(f"port {where} is already in use (--health-port)") from None
            raise StartupError(
                f"cannot listen on {where} (--health-port): {exc.strerror}"
            ) from None
        for address in runner.addresses:
            if isinstance(address, tuple) and len(address) >= 2:
                return int(address[1])
        return self.config.port or 0

    async def stop(self) -> None:
        runner, self._runner = self._runner, None
        if runner is not None:
            await runner.cleanup()

    async def _live(self, request: web.Request) -> web.Response:
        return web.Response(text="live\n")

    async def _ready(self, request: web.Request) -> web.Response:
        reason = self.unready_reason()
        if reason is None:
            return web.Response(text="ready\n")
        return web.Response(status=503, text=f"not ready: {reason}\n")


@asynccontextmanager
async def health_listener(
    config: HealthConfig | None, unready_reason: UnreadyReason, who: str
) -> AsyncIterator[None]:
    """The listener for the life of the block, when configured; it says where it listens."""
    if config is None or config.port is None:
        yield
        return
    server = HealthServer(config, unready_reason)
    port = await server.start()
    host = f"[{config.host}]" if ":" in config.host else config.host
    announce(f"{who} health on http://{host}:{port}{READY_PATH}")
    try:
        yield
    finally:
        await server.stop()
