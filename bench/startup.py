"""How long `mlbuffet up` takes to start, over several starts: the figure the docs quote.

    python -m bench.startup [--runs 5] [--restarts 3] [--modelhosts 2]

Each run starts `mlbuffet up` as a user would (default log level, ephemeral loopback ports) and
measures, from the moment the command is started: the first successful prediction on the
sample iris model, and the ready line (`MLBuffet is up in <s>s`, whose own figure, counted from
inside `up`, is printed too: the difference is Python's start-up). `--runs` first starts each
register the samples in a fresh data dir; `--restarts` start again on one kept data dir. The
1-minute load average is printed beside each run: on a shared machine it explains the spread.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import queue
import re
import signal
import subprocess
import tempfile
import threading
import time
from dataclasses import dataclass
from pathlib import Path

from bench.rest_iris import GATEWAY_LINE, first_prediction, up_command

READY_LINE = re.compile(r"^MLBuffet is up in ([\d.]+)s")
START_TIMEOUT_S = 120.0


@dataclass
class Start:
    first_prediction_s: float
    ready_line_s: float
    up_says_s: float
    load: float


def read_lines(
    process: subprocess.Popen[str], started: float, lines: queue.Queue[tuple[str | None, float]]
) -> None:
    """Every line of `up`'s output with the time it came, then (None, ...) at the end."""
    assert process.stdout is not None
    for line in process.stdout:
        lines.put((line, time.perf_counter() - started))
    lines.put((None, time.perf_counter() - started))


async def one_start(data_dir: Path, modelhosts: int) -> Start:
    started = time.perf_counter()
    process = subprocess.Popen(
        up_command(data_dir, modelhosts),
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
        bufsize=1,
    )
    lines: queue.Queue[tuple[str | None, float]] = queue.Queue()
    threading.Thread(target=read_lines, args=(process, started, lines), daemon=True).start()
    try:
        url, ready = None, None
        first_s = None
        while ready is None:
            line, at = await asyncio.to_thread(lines.get, True, START_TIMEOUT_S)
            if line is None:
                raise RuntimeError(f"mlbuffet up exited with {process.wait()} before it was up")
            if url is None and (match := GATEWAY_LINE.search(line)):
                url = match.group(1)
                await first_prediction(url, started + START_TIMEOUT_S)
                first_s = time.perf_counter() - started
            elif match := READY_LINE.match(line):
                ready = (at, float(match.group(1)))
        assert first_s is not None
        return Start(first_s, ready[0], ready[1], os.getloadavg()[0])
    finally:
        process.send_signal(signal.SIGTERM)
        await asyncio.to_thread(process.wait, 60)


def report(what: str, starts: list[Start]) -> None:
    for start in starts:
        print(
            f"{what}: first prediction {start.first_prediction_s:.2f} s, ready line "
            f"{start.ready_line_s:.2f} s (up says {start.up_says_s:.1f} s), load {start.load:.1f}"
        )
    if starts:
        first = [s.first_prediction_s for s in starts]
        ready = [s.ready_line_s for s in starts]
        print(
            f"{what}, {len(starts)} runs on {os.cpu_count()} cores: first prediction "
            f"{min(first):.1f}-{max(first):.1f} s, ready line {min(ready):.1f}-{max(ready):.1f} s"
        )


async def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--runs", type=int, default=5, help="first starts (default 5)")
    parser.add_argument("--restarts", type=int, default=3, help="starts on kept data (default 3)")
    parser.add_argument("--modelhosts", type=int, default=2)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="mlbuffet-bench-startup-") as folder:
        firsts = [
            await one_start(Path(folder) / f"first-{i}", args.modelhosts) for i in range(args.runs)
        ]
        report("first start", firsts)
        if args.restarts > 0:
            kept = Path(folder) / "kept"
            await one_start(kept, args.modelhosts)  # registers the samples: a first start
            report(
                "restart", [await one_start(kept, args.modelhosts) for _ in range(args.restarts)]
            )


if __name__ == "__main__":
    asyncio.run(main())
