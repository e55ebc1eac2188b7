"""`mlbuffet up`: the whole of MLBuffet on this machine, in one command, until Ctrl-C."""

from __future__ import annotations

import asyncio
import signal
import sys
import time
from collections.abc import Sequence
from typing import Any

from mlbuffet.cli.mesh import ProcessTree
from mlbuffet.cli.process import Console
from mlbuffet.cli.up_config import UpConfig, parse_args
from mlbuffet.roles.runner import run_role


async def serve(config: UpConfig, stop: asyncio.Event) -> int:
    """Start the mesh, keep it up until a signal (exit 0) or a child that keeps crashing (exit 1)."""
    started = time.monotonic()
    console = Console()
    mesh = ProcessTree(config, console)
    stopping: asyncio.Future[Any] = asyncio.ensure_future(stop.wait())
    try:
        starting: asyncio.Future[Any] = asyncio.ensure_future(mesh.start())
        await asyncio.wait({starting, stopping}, return_when=asyncio.FIRST_COMPLETED)
        if not starting.done():  # Ctrl-C while starting
            starting.cancel()
            await asyncio.gather(starting, return_exceptions=True)
            console.say("[up] stopped while starting")
            return 0
        starting.result()  # StartupError ends up as one line on stderr, exit 1
        for line in mesh.summary(time.monotonic() - started):
            console.say(line)
        assert mesh.supervisor is not None
        failed: asyncio.Future[Any] = mesh.supervisor.failed
        await asyncio.wait({stopping, failed}, return_when=asyncio.FIRST_COMPLETED)
        if failed.done() and not stop.is_set():
            console.warn(f"mlbuffet up: {failed.result()}; stopping everything")
            return 1
        console.say("[up] stopping: gateway, then modelhosts and trainer, then nats-server")
        return 0
    finally:
        stopping.cancel()
        # A second Ctrl-C while stopping kills what is left at once.
        loop = asyncio.get_running_loop()
        for signum in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(signum, mesh.kill_now)
        launched = mesh.launched
        await mesh.stop()
        # A port in use is one line on stderr, as documented: nothing ran, so nothing "stopped".
        if launched:
            console.say("[up] stopped")


def main(argv: Sequence[str] | None = None) -> int:
    return run_role(argv, parse_args, serve)


if __name__ == "__main__":
    sys.exit(main())
