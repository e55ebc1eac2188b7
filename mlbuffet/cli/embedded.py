"""The embedded nats-server as a child of `mlbuffet up` or `mlbuffet nats`.

Wraps mlbuffet.natsd.server.NatsServer so it can be restarted like any other
child: a restart reuses the port the first run got (port 0 included), so the
URL every role connects to stays valid and they simply reconnect.
"""

from __future__ import annotations

import dataclasses
import re

from mlbuffet.cli.process import Console, die_with_parent
from mlbuffet.natsd.server import NatsServer, NatsServerConfig

_LEVEL = re.compile(r"\[(INF|WRN|ERR|FTL|DBG|TRC)\]\s?(.*)")
LOUD_LEVELS = frozenset({"WRN", "ERR", "FTL"})
"""nats-server levels always shown; the rest (startup banner, client notices) only when verbose."""


class EmbeddedNats:
    """One nats-server, started again on the same port if it has to be restarted."""

    name = "nats"

    def __init__(self, config: NatsServerConfig, console: Console, *, verbose: bool) -> None:
        self.config = config
        self.console = console
        self.verbose = verbose
        self.server: NatsServer | None = None

    @property
    def url(self) -> str:
        assert self.server is not None and self.server.url is not None
        return self.server.url

    @property
    def pid(self) -> int | None:
        return self.server.pid if self.server else None

    async def launch(self, timeout_s: float | None = None) -> str:
        """Start the server (it has its own ready timeout); returns its client URL."""
        del timeout_s  # NatsServer bounds its own start
        server = NatsServer(self.config, on_log=self._log, preexec_fn=die_with_parent())
        url = await server.start()
        self.server = server
        if server.port is not None:
            self.config = dataclasses.replace(self.config, port=server.port)
        return url

    def _log(self, line: str) -> None:
        match = _LEVEL.search(line)
        level, text = (match.group(1), match.group(2)) if match else ("INF", line)
        if self.verbose or level in LOUD_LEVELS:
            self.console.child(self.name, f"{level} {text}", stderr=True)

    async def wait(self) -> int:
        assert self.server is not None
        return await self.server.wait()

    async def stop(self) -> None:
        """SIGTERM (nats-server flushes JetStream to disk), SIGKILL only if it hangs."""
        if self.server is not None:
            await self.server.stop()
