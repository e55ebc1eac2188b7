"""Triton's own load tool against MLBuffet's /v2: perf_analyzer's figures beside wrk's.

perf_analyzer (from `tritonclient[http]==2.48.0`, its own virtualenv made by
`python -m bench.peers.venvs perf_analyzer`) reads the model's configuration
and statistics from the gateway, then sends binary-tensor /v2 requests from
C++ (asynchronous HTTP, `concurrency` requests in flight). It measures in
windows of `seconds / 3` until three agree within STABILITY_PERCENT, at most
MAX_WINDOWS of them, and reports client-side throughput and percentiles. If
they never agree (a shared machine), it measures three more windows and
reports them as they come, and says so.
"""

from __future__ import annotations

import asyncio
import csv
import subprocess
import tempfile
from pathlib import Path

from bench.load import Measured
from bench.peers.venvs import ENVS, perf_analyzer_command

STABILITY_PERCENT = 25
"""perf_analyzer's own default is 10; a shared 2-core machine rarely gives that."""
MAX_WINDOWS = 6
UNBOUNDED_PERCENT = 1_000_000
"""Any three windows agree: the fallback when they never agree within STABILITY_PERCENT."""


def available() -> bool:
    return ENVS["perf_analyzer"].ready()


UNSTABLE = "Failed to obtain stable measurement"


def run(host_port: str, model: str, concurrency: int, seconds: float) -> Measured:
    """perf_analyzer's figures; if its windows never agree, those of three windows taken as
    they come, said in the generator's name. RuntimeError with its own words otherwise."""
    try:
        return run_once(host_port, model, concurrency, seconds, STABILITY_PERCENT)
    except RuntimeError as exc:
        if UNSTABLE not in str(exc):
            raise
    measured = run_once(host_port, model, concurrency, seconds, UNBOUNDED_PERCENT, windows=3)
    measured.generator += f" (windows differed by over {STABILITY_PERCENT}%)"
    return measured


def run_once(
    host_port: str,
    model: str,
    concurrency: int,
    seconds: float,
    stability_percent: int,
    windows: int = MAX_WINDOWS,
) -> Measured:
    window_ms = max(500, round(seconds * 1000 / 3))
    with tempfile.TemporaryDirectory(prefix="mlbuffet-perf-") as folder:
        report = Path(folder) / "report.csv"
        command = [
            *perf_analyzer_command(),
            *("-m", model, "-u", host_port, "-i", "http", "--async"),
            *("--concurrency-range", str(concurrency)),
            *("--measurement-interval", str(window_ms)),
            *("--stability-percentage", str(stability_percent)),
            *("--max-trials", str(windows)),
            *("-f", str(report)),
        ]
        done = subprocess.run(
            command,
            capture_output=True,
            text=True,
            timeout=windows * window_ms / 1000 + 60,
        )
        if done.returncode != 0 or not report.exists():
            last = (done.stdout + done.stderr).strip().splitlines()
            raise RuntimeError(f"perf_analyzer: {last[-1] if last else done.returncode}")
        with report.open() as handle:
            row = next(csv.DictReader(handle))
    rps = float(row["Inferences/Second"])
    return Measured(
        requests=round(rps * seconds),
        failures=0,
        seconds=seconds,
        rps=rps,
        p50_ms=float(row["p50 latency"]) / 1000,
        p99_ms=float(row["p99 latency"]) / 1000,
        generator=f"perf_analyzer --async -c{concurrency}",
    )


async def measure(host_port: str, model: str, concurrency: int, seconds: float) -> Measured:
    return await asyncio.to_thread(run, host_port, model, concurrency, seconds)
