"""One child process of `mlbuffet up`: started, its output forwarded, its ready line awaited.

Children run in their own process group, so a Ctrl-C in the terminal reaches
only `up`, which then stops them in order. On Linux each child also asks the
kernel for SIGTERM when `up` dies (PR_SET_PDEATHSIG), so even a SIGKILLed
`up` leaves no orphans behind.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import ctypes
import os
import re
import signal
import sys
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

PR_SET_PDEATHSIG = 1
"""From <linux/prctl.h>."""

STDERR_TAIL_LINES = 5
"""Last stderr lines kept to explain a child that died before it was ready."""


def die_with_parent() -> Callable[[], None] | None:
    """A preexec_fn that makes the child get SIGTERM when this process dies (Linux only).

    The kernel sends the signal when the *thread* that forked the child exits,
    so children must be started from the main thread (the event loop's).
    """
    if not sys.platform.startswith("linux"):
        return None
    libc = ctypes.CDLL(None, use_errno=True)
    parent = os.getpid()

    def preexec() -> None:
        libc.prctl(PR_SET_PDEATHSIG, signal.SIGTERM, 0, 0, 0)
        # The parent may have died between fork and prctl: then nobody would signal us.
        if os.getppid() != parent:
            os._exit(1)

    return preexec


def own_group_dying_with_parent() -> Callable[[], None]:
    """A preexec_fn: the child leads its own process group (a terminal's Ctrl-C reaches only
    `up`, which then stops its children in order), and dies with its parent.

    Done in preexec_fn rather than with `process_group=0`, which uvloop's
    subprocess_exec does not accept.
    """
    die = die_with_parent()

    def preexec() -> None:
        os.setpgid(0, 0)
        if die is not None:
            die()

    return preexec


class Console:
    """Where `up` writes: its own lines, and its children's lines prefixed by their name."""

    def say(self, line: str) -> None:
        self._write(sys.stdout, line)

    def warn(self, line: str) -> None:
        self._write(sys.stderr, line)

    def child(self, name: str, line: str, *, stderr: bool) -> None:
        self._write(sys.stderr if stderr else sys.stdout, f"[{name}] {line}")

    @staticmethod
    def _write(stream: object, line: str) -> None:
        try:
            print(line, file=stream, flush=True)  # type: ignore[call-overload]
        except (BrokenPipeError, ValueError):
            pass  # whoever read our output went away; the children must still be stopped


@dataclass(frozen=True, slots=True)
class ChildSpec:
    """How to start one child, and how it says it is ready."""

    name: str
    argv: tuple[str, ...]
    ready: re.Pattern[str]
    """Matched against each stdout line; the first match means the child serves."""
    env: tuple[tuple[str, str], ...] = ()
    """Variables added to this process's environment for the child (its NATS secrets)."""


class ChildExitedError(RuntimeError):
    """A child ended before its ready line; the message carries the child's last words."""


def describe_exit(code: int) -> str:
    if code < 0:
        try:
            return f"killed by {signal.Signals(-code).name}"
        except ValueError:
            return f"killed by signal {-code}"
    return f"exit code {code}"


class ChildProcess:
    """One run of a child process; `launch` again to restart it."""

    def __init__(self, spec: ChildSpec, console: Console) -> None:
        self.spec = spec
        self.console = console
        self.ready_match: re.Match[str] | None = None
        self._process: asyncio.subprocess.Process | None = None
        self._pumps: list[asyncio.Task[None]] = []
        self._stderr_tail: collections.deque[str] = collections.deque(maxlen=STDERR_TAIL_LINES)

    @property
    def name(self) -> str:
        return self.spec.name

    @property
    def pid(self) -> int | None:
        return self._process.pid if self._process else None

    @property
    def running(self) -> bool:
        return self._process is not None and self._process.returncode is None

    async def launch(self, timeout_s: float) -> re.Match[str]:
        """Start the child and return its ready line's match; ChildExitedError if it dies first."""
        self.ready_match = None
        self._stderr_tail.clear()
        self._process = await asyncio.create_subprocess_exec(
            *self.spec.argv,
            env={**os.environ, **dict(self.spec.env)} if self.spec.env else None,
            stdin=asyncio.subprocess.DEVNULL,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
            preexec_fn=own_group_dying_with_parent(),
        )
        assert self._process.stdout is not None and self._process.stderr is not None
        ready: asyncio.Future[re.Match[str]] = asyncio.get_running_loop().create_future()
        self._pumps = [
            asyncio.create_task(self._pump(self._process.stdout, False, ready)),
            asyncio.create_task(self._pump(self._process.stderr, True, None)),
        ]
        exited: asyncio.Future[int] = asyncio.ensure_future(self._process.wait())
        waiting: set[asyncio.Future[Any]] = {ready, exited}
        try:
            done, _ = await asyncio.wait(
                waiting, timeout=timeout_s, return_when=asyncio.FIRST_COMPLETED
            )
            if ready in done:
                self.ready_match = ready.result()
                return self.ready_match
            if exited in done:
                # Let the pumps print what the child said before it died.
                await asyncio.gather(*self._pumps, return_exceptions=True)
                raise ChildExitedError(self._last_words(describe_exit(exited.result())))
            await self.kill()
            raise ChildExitedError(f"{self.name} was not ready within {timeout_s:.0f}s")
        finally:
            exited.cancel()
            ready.cancel()

    def _last_words(self, how: str) -> str:
        said = self._stderr_tail[-1] if self._stderr_tail else ""
        return f"{self.name} stopped before it was ready ({how})" + (f": {said}" if said else "")

    async def _pump(
        self,
        stream: asyncio.StreamReader,
        is_stderr: bool,
        ready: asyncio.Future[re.Match[str]] | None,
    ) -> None:
        while raw := await stream.readline():
            line = raw.decode(errors="replace").rstrip()
            self.console.child(self.name, line, stderr=is_stderr)
            if is_stderr:
                self._stderr_tail.append(line)
            elif ready is not None and not ready.done():
                if match := self.spec.ready.search(line):
                    ready.set_result(match)

    async def wait(self) -> int:
        """Wait for this run to end (its output fully forwarded); returns the exit code."""
        assert self._process is not None
        code = await self._process.wait()
        await asyncio.gather(*self._pumps, return_exceptions=True)
        return code

    def send(self, signum: signal.Signals) -> None:
        if self._process is not None and self._process.returncode is None:
            with contextlib.suppress(ProcessLookupError):
                self._process.send_signal(signum)

    async def kill(self) -> None:
        self.send(signal.SIGKILL)
        if self._process is not None:
            await self.wait()
