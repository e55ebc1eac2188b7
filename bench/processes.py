"""The processes a benchmark run starts: nats-server, gateways, modelhosts, peers.

Each runs as its own OS process (as in production), so none shares a GIL
with the load generator. Everything listens on 127.0.0.1 and is stopped,
by its own pid, when the run ends.
"""

from __future__ import annotations

import contextlib
import os
import re
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Sequence
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
START_TIMEOUT_S = 60.0
STOP_TIMEOUT_S = 15.0


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


class Child:
    """A child process whose output is read until a line says it is ready, then drained."""

    def __init__(
        self,
        name: str,
        argv: Sequence[str],
        *,
        env: dict[str, str] | None = None,
        cwd: Path | None = None,
    ) -> None:
        self.name = name
        self.lines: list[str] = []
        self.process = subprocess.Popen(
            list(argv),
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            text=True,
            bufsize=1,
            env={**os.environ, **(env or {})},
            cwd=cwd or ROOT,
        )
        self._ready = threading.Event()
        self._pattern: re.Pattern[str] | None = None
        self._match: re.Match[str] | None = None
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        assert self.process.stdout is not None
        for line in self.process.stdout:
            if len(self.lines) < 2000:
                self.lines.append(line.rstrip())
            if self._pattern is not None and not self._ready.is_set():
                match = self._pattern.search(line)
                if match:
                    self._match = match
                    self._ready.set()
        self._ready.set()

    def wait_for(self, pattern: str, timeout_s: float = START_TIMEOUT_S) -> re.Match[str]:
        """Block until an output line matches `pattern`; RuntimeError if the child dies first."""
        self._pattern = re.compile(pattern)
        for line in list(self.lines):
            if match := self._pattern.search(line):
                return match
        self._ready.wait(timeout_s)
        if self._match is None:
            tail = "\n".join(self.lines[-20:])
            raise RuntimeError(f"{self.name} did not print {pattern!r} in time:\n{tail}")
        return self._match

    def stop(self) -> None:
        """SIGTERM, then SIGKILL; then SIGKILL whatever it started and left behind (by pid)."""
        left = descendants(self.process.pid)
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(STOP_TIMEOUT_S)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(STOP_TIMEOUT_S)
        for pid in left:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)

    def tree(self) -> list[int]:
        """This child's pid and those of every process under it now."""
        return [self.process.pid, *descendants(self.process.pid)]


def _parent(pid: int) -> int | None:
    try:
        return int(Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[1])
    except (OSError, ValueError, IndexError):
        return None


def descendants(pid: int) -> list[int]:
    """Every process under `pid` (Linux /proc; empty elsewhere)."""
    children: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit() and (parent := _parent(int(entry.name))) is not None:
            children.setdefault(parent, []).append(int(entry.name))
    out, todo = [], [pid]
    while todo:
        for child in children.get(todo.pop(), []):
            out.append(child)
            todo.append(child)
    return out


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of a process so far (0 once it is gone)."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def python_child(
    name: str, module: str, *args: str, python: str | None = None, **kw: object
) -> Child:
    return Child(name, [python or sys.executable, "-m", module, *args], **kw)  # type: ignore[arg-type]


def wait_http(
    url: str,
    timeout_s: float = START_TIMEOUT_S,
    expect: int | None = None,
    child: Child | None = None,
) -> int:
    """Poll `url` with GET until it answers (any status, or `expect`); returns the status.

    RuntimeError at once if `child` (the server behind `url`) exits meanwhile."""
    import urllib.error
    import urllib.request

    deadline = time.monotonic() + timeout_s
    while True:
        try:
            with urllib.request.urlopen(url, timeout=2) as response:
                status: int = response.status
        except urllib.error.HTTPError as exc:
            status = exc.code
        except (urllib.error.URLError, ConnectionError, TimeoutError):
            status = 0
        if status and (expect is None or status == expect):
            return status
        if child is not None and child.process.poll() is not None:
            raise RuntimeError(f"{child.name} exited with {child.process.returncode}")
        if time.monotonic() > deadline:
            raise RuntimeError(f"{url} did not answer in {timeout_s:.0f} s")
        time.sleep(0.1)
