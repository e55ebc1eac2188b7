"""Load generators: wrk for HTTP (a C program, so the load costs the server little), a bounded
Python HTTP generator when wrk is missing, and in-process loops for NATS and onnxruntime.

Every generator runs for a fixed number of seconds and returns a Measured.
"""

from __future__ import annotations

import asyncio
import re
import shutil
import subprocess
import tempfile
import time
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import aiohttp

WRK_TIMEOUT_S = 10


@dataclass
class Measured:
    requests: int
    failures: int
    seconds: float
    rps: float
    p50_ms: float
    p99_ms: float
    generator: str

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def from_latencies(
    latencies: list[float], failures: int, seconds: float, generator: str
) -> Measured:
    latencies.sort()
    n = len(latencies)
    return Measured(
        requests=n,
        failures=failures,
        seconds=seconds,
        rps=n / seconds if seconds > 0 else 0.0,
        p50_ms=1000 * latencies[n // 2] if n else float("nan"),
        p99_ms=1000 * latencies[int(0.99 * (n - 1))] if n else float("nan"),
        generator=generator,
    )


def wrk_path() -> str | None:
    return shutil.which("wrk")


def lua_string(data: bytes) -> str:
    """A Lua string literal holding exactly `data` (binary bodies included)."""
    out = []
    for byte in data:
        char = chr(byte)
        if 32 <= byte < 127 and char not in '"\\':
            out.append(char)
        else:
            out.append(f"\\{byte:03d}")
    return '"' + "".join(out) + '"'


def wrk(
    url: str,
    body: bytes,
    headers: Mapping[str, str],
    *,
    connections: int,
    seconds: float,
    threads: int = 1,
) -> Measured:
    """POST `body` to `url` with wrk for `seconds`; non-2xx answers and timeouts are failures."""
    binary = wrk_path()
    assert binary is not None
    with tempfile.TemporaryDirectory(prefix="mlbuffet-wrk-") as folder:
        script = Path(folder) / "post.lua"
        lines = ['wrk.method = "POST"', f"wrk.body = {lua_string(body)}"]
        lines += [
            f"wrk.headers[{lua_string(k.encode())}] = {lua_string(v.encode())}"
            for k, v in headers.items()
        ]
        script.write_text("\n".join(lines) + "\n")
        duration = max(1, round(seconds))
        out = subprocess.run(
            [
                binary,
                "-t",
                str(threads),
                "-c",
                str(connections),
                "-d",
                f"{duration}s",
                "--timeout",
                f"{WRK_TIMEOUT_S}s",
                "--latency",
                "-s",
                str(script),
                url,
            ],
            capture_output=True,
            text=True,
            timeout=duration + 30,
            check=True,
        ).stdout
    total = int(_search(r"(\d+) requests in", out))
    non_2xx = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    errors = re.search(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", out)
    failures = (int(non_2xx.group(1)) if non_2xx else 0) + (
        sum(int(g) for g in errors.groups()) if errors else 0
    )
    good = max(0, total - (int(non_2xx.group(1)) if non_2xx else 0))
    return Measured(
        requests=good,
        failures=failures,
        seconds=float(duration),
        rps=good / duration,
        p50_ms=_wrk_percentile(out, "50"),
        p99_ms=_wrk_percentile(out, "99"),
        generator=f"wrk -t{threads} -c{connections}",
    )


def _search(pattern: str, text: str) -> str:
    match = re.search(pattern, text)
    if match is None:
        raise RuntimeError(f"unexpected wrk output (no {pattern!r}):\n{text}")
    return match.group(1)


def _wrk_percentile(out: str, p: str) -> float:
    match = re.search(rf"^\s*{p}%\s+([\d.]+)(us|ms|s)\b", out, re.MULTILINE)
    if match is None:
        return float("nan")
    value, unit = match.groups()
    return float(value) * {"us": 0.001, "ms": 1.0, "s": 1000.0}[unit]


async def python_http(
    url: str,
    body: bytes,
    headers: Mapping[str, str],
    *,
    connections: int,
    seconds: float,
) -> Measured:
    """The fallback generator: aiohttp clients in this process (they compete with the server for CPU)."""
    connector = aiohttp.TCPConnector(limit=connections)
    timeout = aiohttp.ClientTimeout(total=WRK_TIMEOUT_S)
    async with aiohttp.ClientSession(connector=connector, timeout=timeout) as session:

        async def call() -> bool:
            async with session.post(url, data=body, headers=dict(headers)) as response:
                await response.read()
                return 200 <= response.status < 300

        return await async_loop(
            call,
            concurrency=connections,
            seconds=seconds,
            generator=f"python aiohttp -c{connections}",
        )


async def http_load(
    url: str,
    body: bytes,
    headers: Mapping[str, str],
    *,
    connections: int,
    seconds: float,
    prefer_wrk: bool = True,
) -> Measured:
    if prefer_wrk and wrk_path():
        return await asyncio.to_thread(
            wrk, url, body, headers, connections=connections, seconds=seconds
        )
    return await python_http(url, body, headers, connections=connections, seconds=seconds)


async def async_loop(
    call: Callable[[], Awaitable[bool]], *, concurrency: int, seconds: float, generator: str
) -> Measured:
    """`concurrency` tasks calling `call` back to back for `seconds`; False or an exception fails."""
    latencies: list[float] = []
    failures = 0
    end = time.perf_counter() + seconds

    async def worker() -> None:
        nonlocal failures
        while (now := time.perf_counter()) < end:
            try:
                ok = await call()
            except Exception:
                ok = False
            if ok:
                latencies.append(time.perf_counter() - now)
            else:
                failures += 1

    began = time.perf_counter()
    await asyncio.gather(*(worker() for _ in range(concurrency)))
    return from_latencies(latencies, failures, time.perf_counter() - began, generator)


def sync_loop(
    call: Callable[[], object], *, seconds: float, generator: str, items: int = 1
) -> Measured:
    """Call `call` back to back in this thread for `seconds`; `items` counts what one call serves."""
    latencies: list[float] = []
    end = time.perf_counter() + seconds
    began = time.perf_counter()
    while (now := time.perf_counter()) < end:
        call()
        latencies.append(time.perf_counter() - now)
    measured = from_latencies(latencies, 0, time.perf_counter() - began, generator)
    measured.rps *= items
    return measured
