"""The heartbeat every node publishes: who it is, what it has loaded, how busy it is.

One publisher serves every role (the gateway too, which is not an Actor): the
role hands it a function that says what the node is doing right now, and the
publisher adds what every process has (host, pid, CPU, RSS) and publishes a
Heartbeat on `mlbuffet.heartbeat.<role>.<node>` every `interval_s`.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import resource
import socket
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from functools import cache
from importlib.metadata import PackageNotFoundError
from importlib.metadata import version as package_version
from typing import Any

from nats.aio.client import Client

from mlbuffet.protocol import subjects
from mlbuffet.protocol.cluster import Heartbeat, LoadedModel
from mlbuffet.protocol.wire import pack

log = logging.getLogger(__name__)

DEFAULT_INTERVAL_S = 2.0
MIN_INTERVAL_S = 0.05


@cache
def mlbuffet_version() -> str:
    try:
        return package_version("mlbuffet")
    except PackageNotFoundError:
        return "0.0.0"


def process_start_time() -> float:
    """Unix time this process started (from /proc where there is one, else now-ish)."""
    try:
        with open("/proc/self/stat", "rb") as stat:
            ticks = int(stat.read().rsplit(b")", 1)[1].split()[19])
        with open("/proc/uptime", "rb") as uptime:
            up_s = float(uptime.read().split()[0])
        return time.time() - up_s + ticks / os.sysconf("SC_CLK_TCK")
    except (OSError, ValueError, IndexError):
        return _FIRST_SEEN


_FIRST_SEEN = time.time()


def rss_bytes() -> int:
    """Resident memory now (/proc/self/statm); the peak from getrusage where /proc is missing."""
    try:
        with open("/proc/self/statm", "rb") as statm:
            return int(statm.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
    except (OSError, ValueError, IndexError):
        return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024


class CpuSampler:
    """Process CPU % between two readings, from os.times(): no psutil needed for one number."""

    def __init__(self) -> None:
        self._cpu, self._wall = self._now()

    @staticmethod
    def _now() -> tuple[float, float]:
        times = os.times()
        return times.user + times.system, time.monotonic()

    def percent(self) -> float:
        cpu, wall = self._now()
        spent, elapsed = cpu - self._cpu, wall - self._wall
        self._cpu, self._wall = cpu, wall
        return round(100.0 * spent / elapsed, 2) if elapsed > 0 else 0.0


@dataclass(frozen=True, slots=True)
class NodeLoad:
    """What a role reports about its own work in each heartbeat."""

    in_flight: int = 0
    models: tuple[LoadedModel, ...] = ()
    counters: Mapping[str, Any] = field(default_factory=dict)
    latency: Mapping[str, Any] = field(default_factory=dict)


class HeartbeatPublisher:
    """Publishes a Heartbeat now and every `interval_s` until stopped; never fails its node."""

    def __init__(
        self,
        nc: Client,
        role: str,
        node_id: str,
        load: Callable[[], NodeLoad],
        interval_s: float = DEFAULT_INTERVAL_S,
    ) -> None:
        if interval_s < MIN_INTERVAL_S:
            raise ValueError(f"a heartbeat interval must be at least {MIN_INTERVAL_S}s")
        self.nc = nc
        self.role = role
        self.node_id = node_id
        self.interval_s = interval_s
        self._load = load
        self._cpu = CpuSampler()
        self._host = socket.gethostname()
        self._started_at = process_start_time()
        self._last_cpu = 0.0
        self._task: asyncio.Task[None] | None = None

    def current(self, *, sample_cpu: bool = False) -> Heartbeat:
        """The heartbeat as of now; only the periodic one moves the CPU sampling window."""
        if sample_cpu:
            self._last_cpu = self._cpu.percent()
        load = self._load()
        return Heartbeat(
            node=self.node_id,
            role=self.role,
            host=self._host,
            pid=os.getpid(),
            version=mlbuffet_version(),
            started_at=self._started_at,
            at=time.time(),
            interval_s=self.interval_s,
            cpu_percent=self._last_cpu,
            rss_bytes=rss_bytes(),
            in_flight=load.in_flight,
            models=load.models,
            counters=load.counters,
            latency=load.latency,
        )

    async def publish(self) -> None:
        try:
            heartbeat = self.current(sample_cpu=True)
            await self.nc.publish(subjects.heartbeat(self.role, self.node_id), pack(heartbeat))
        except Exception:
            log.debug("heartbeat of %s not sent", self.node_id, exc_info=True)

    def start(self) -> None:
        if self._task is None:
            self._task = asyncio.create_task(self._run(), name=f"heartbeat-{self.node_id}")

    async def stop(self) -> None:
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task

    async def _run(self) -> None:
        loop = asyncio.get_running_loop()
        next_at = loop.time()
        while True:
            await self.publish()
            # On a fixed schedule: a slow publish does not push every later beat back.
            next_at = max(next_at + self.interval_s, loop.time())
            await asyncio.sleep(next_at - loop.time())
