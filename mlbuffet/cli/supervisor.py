"""Keeping `mlbuffet up`'s children alive, and stopping them in order.

A child that dies while MLBuffet is up is started again after a pause that
doubles with every quick crash. A child that keeps crashing right after it
starts will not get better by itself: after a few such crashes in a row the
supervisor gives up and says so, and `up` shuts everything down.
"""

from __future__ import annotations

import asyncio
import contextlib
import signal
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol

from mlbuffet.cli.process import ChildExitedError, ChildProcess, Console, describe_exit


class Unit(Protocol):
    """Anything the supervisor can restart: a ChildProcess or the embedded nats-server."""

    @property
    def name(self) -> str: ...

    @property
    def pid(self) -> int | None: ...

    async def launch(self, timeout_s: float) -> object: ...

    async def wait(self) -> int: ...


@dataclass(frozen=True, slots=True)
class RestartPolicy:
    first_delay_s: float = 0.5
    max_delay_s: float = 8.0
    fast_crash_s: float = 10.0
    """A run shorter than this counts as a crash at start-up."""
    max_fast_crashes: int = 5
    """Crashes at start-up in a row after which the supervisor gives up."""

    def delay_s(self, crashes: int) -> float:
        """The pause before restarting after the `crashes`-th quick crash in a row."""
        return min(self.max_delay_s, self.first_delay_s * 2.0 ** max(0, crashes - 1))


class Supervisor:
    """Restarts the units it watches; `failed` gets a reason once it gives up on one."""

    def __init__(self, console: Console, policy: RestartPolicy, launch_timeout_s: float) -> None:
        self.console = console
        self.policy = policy
        self.launch_timeout_s = launch_timeout_s
        self.failed: asyncio.Future[str] = asyncio.get_running_loop().create_future()
        self._keepers: list[asyncio.Task[None]] = []

    def watch(self, unit: Unit) -> None:
        """Restart `unit` whenever it dies from now on (it must be running already)."""
        self._keepers.append(asyncio.create_task(self._keep(unit), name=f"keep-{unit.name}"))

    async def _keep(self, unit: Unit) -> None:
        crashes = 0
        started = time.monotonic()
        while True:
            code = await unit.wait()
            crashes = crashes + 1 if time.monotonic() - started < self.policy.fast_crash_s else 1
            if crashes > self.policy.max_fast_crashes:
                self._give_up(
                    f"{unit.name} crashed {crashes} times in a row within "
                    f"{self.policy.fast_crash_s:.0f}s of starting ({describe_exit(code)}); giving up"
                )
                return
            delay = self.policy.delay_s(crashes)
            self.console.warn(
                f"[up] {unit.name} (pid {unit.pid}) stopped unexpectedly ({describe_exit(code)}); "
                f"restarting it in {delay:.1f}s"
            )
            await asyncio.sleep(delay)
            started = time.monotonic()
            try:
                await unit.launch(self.launch_timeout_s)
            except (ChildExitedError, OSError, RuntimeError) as exc:
                self.console.warn(f"[up] restarting {unit.name} failed: {exc}")
                continue
            self.console.say(f"[up] {unit.name} is back (pid {unit.pid})")

    def _give_up(self, reason: str) -> None:
        if not self.failed.done():
            self.failed.set_result(reason)

    async def stop_watching(self) -> None:
        """From now on a child that exits is not restarted (call before stopping them)."""
        for keeper in self._keepers:
            keeper.cancel()
        await asyncio.gather(*self._keepers, return_exceptions=True)
        self._keepers.clear()


async def stop_in_order(
    groups: Sequence[Sequence[ChildProcess]], timeout_s: float, console: Console
) -> None:
    """SIGTERM each group in turn and wait for it; SIGKILL what is still there after `timeout_s`."""
    for group in groups:
        running = [child for child in group if child.running]
        for child in running:
            child.send(signal.SIGTERM)
        if not running:
            continue
        waits = {asyncio.ensure_future(child.wait()): child for child in running}
        _, pending = await asyncio.wait(waits, timeout=timeout_s)
        for future in pending:
            child = waits[future]
            console.warn(f"[up] {child.name} did not stop within {timeout_s:g}s; killing it")
            await child.kill()
            with contextlib.suppress(asyncio.CancelledError):
                await future
