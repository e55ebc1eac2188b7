"""How fast a fresh `mlbuffet up` serves: time to first prediction, then REST load on iris.

    python -m bench.rest_iris [--connections 64] [--seconds 10] [--modelhosts 2]

Starts `mlbuffet up` on ephemeral loopback ports in a temporary data dir,
measures the time from the command's start to the first successful
prediction on the sample iris model, then runs a bounded concurrent load
(aiohttp clients in this process; `--wrk` uses wrk if it is installed, which
leaves more CPU to the server) and prints requests per second, latency
percentiles and failures. Everything stays on 127.0.0.1.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import aiohttp

from bench import load

BODY = json.dumps({"values": [2, 5, 1, 4]}).encode()
GATEWAY_LINE = re.compile(r"listening on (http://\S+)")


def up_command(data_dir: Path, modelhosts: int, *flags: str) -> list[str]:
    """`mlbuffet up` on ephemeral loopback ports, its data in `data_dir`."""
    return [
        sys.executable,
        "-m",
        "mlbuffet",
        "up",
        "--nats-port",
        "0",
        "--port",
        "0",
        "--metrics-port",
        "0",
        "--data-dir",
        str(data_dir),
        "--modelhosts",
        str(modelhosts),
        *flags,
    ]


async def first_prediction(url: str, deadline: float) -> None:
    """Ask iris until it answers right (the gateway may listen before a modelhost serves)."""
    async with aiohttp.ClientSession() as session:
        while time.perf_counter() < deadline:
            try:
                async with session.post(
                    f"{url}/api/v1/models/iris/prediction",
                    data=BODY,
                    headers={"Content-Type": "application/json"},
                ) as response:
                    if response.status == 200 and (await response.json())["values"] == [1]:
                        return
            except aiohttp.ClientError:
                pass
            await asyncio.sleep(0.01)
    raise RuntimeError("no successful prediction within 60 s")


async def start_up(data_dir: Path, modelhosts: int) -> tuple[subprocess.Popen[str], str, float]:
    """Start `mlbuffet up`; return it, its REST URL and seconds to the first good prediction."""
    started = time.perf_counter()
    process = subprocess.Popen(
        up_command(data_dir, modelhosts, "--log-level", "warning"),
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        bufsize=1,
    )
    assert process.stdout is not None
    loop = asyncio.get_running_loop()
    url = None
    deadline = started + 60
    while url is None:
        line = await loop.run_in_executor(None, process.stdout.readline)
        if not line or time.perf_counter() > deadline:
            raise RuntimeError("mlbuffet up did not start")
        if match := GATEWAY_LINE.search(line):
            url = match.group(1)
    asyncio.get_running_loop().run_in_executor(None, _drain, process)
    await first_prediction(url, deadline)
    return process, url, time.perf_counter() - started


def _drain(process: subprocess.Popen[str]) -> None:
    assert process.stdout is not None
    for _ in process.stdout:
        pass


async def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--connections", type=int, default=64)
    parser.add_argument("--seconds", type=float, default=10)
    parser.add_argument("--modelhosts", type=int, default=2)
    parser.add_argument("--wrk", action="store_true", help="load with wrk (must be installed)")
    args = parser.parse_args()
    data_dir = Path(tempfile.mkdtemp(prefix="mlbuffet-bench-"))
    process, url, first = await start_up(data_dir, args.modelhosts)
    try:
        print(f"mlbuffet up -> first successful prediction: {first:.2f} s")
        result = await load.http_load(
            f"{url}/api/v1/models/iris/prediction",
            BODY,
            {"Content-Type": "application/json"},
            connections=args.connections,
            seconds=args.seconds,
            prefer_wrk=args.wrk,
        )
        print(
            f"REST iris, {args.connections} connections, {args.seconds:.0f} s, "
            f"{args.modelhosts} modelhosts, load from {result.generator}, {os.cpu_count()} cores:"
        )
        print(
            f"  {result.rps:.0f} req/s   p50 {result.p50_ms:.1f} ms   "
            f"p99 {result.p99_ms:.1f} ms   failures {result.failures}"
        )
    finally:
        process.send_signal(signal.SIGTERM)
        process.wait(timeout=60)
        shutil.rmtree(data_dir, ignore_errors=True)


if __name__ == "__main__":
    asyncio.run(main())
