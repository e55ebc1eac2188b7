"""CPU time per request in each process: the figure a busy machine cannot blur much.

    python -m bench.cpu_split [--seconds 8]

Runs the REST JSON scenario, the nats-py scenario on iris, the NATS echo and
the plain aiohttp reference once each, and reads every process's CPU time
(user + system, /proc, Linux only) before and after: the microseconds of CPU
one request costs in the gateway, the modelhost, nats-server and the
reference servers. Rates move with the machine's load; these much less.
"""

from __future__ import annotations

import argparse
import json
import tempfile
from collections.abc import Awaitable, Callable
from pathlib import Path

from bench import load, scenarios
from bench.__main__ import BenchProcesses
from bench.load import Measured
from bench.models import IRIS, IRIS_ROW
from bench.processes import cpu_seconds, python_child
from mlbuffet.protocol import subjects
from mlbuffet.protocol.inference import InferRequest
from mlbuffet.protocol.wire import pack
from mlbuffet.roles.runner import run

JSON = {"Content-Type": "application/json"}


async def measure(
    name: str, pids: dict[str, int], scenario: Callable[[], Awaitable[Measured]]
) -> None:
    before = {who: cpu_seconds(pid) for who, pid in pids.items()}
    measured = await scenario()
    after = {who: cpu_seconds(pid) for who, pid in pids.items()}
    n = max(1, measured.requests)
    parts = ", ".join(f"{who} {1e6 * (after[who] - before[who]) / n:.0f} us" for who in pids)
    print(f"{name}: {measured.rps:,.0f} req/s; CPU per request: {parts}", flush=True)


async def main(seconds: float) -> None:
    body = json.dumps({"values": IRIS_ROW}).encode()
    with tempfile.TemporaryDirectory(prefix="mlbuffet-cpu-") as folder:
        mesh = BenchProcesses(Path(folder))
        await mesh.start()
        try:
            await mesh.upload("iris", IRIS)
            host = mesh.modelhost("--models", "iris")
            assert mesh.server.pid is not None
            pids = {
                "gateway": mesh.children[0].process.pid,
                "modelhost": host.process.pid,
                "nats-server": mesh.server.pid,
            }
            url = f"{mesh.http}/api/v1/models/iris/prediction"
            await measure(
                "REST JSON, 64 conn",
                pids,
                lambda: load.http_load(url, body, JSON, connections=64, seconds=seconds),
            )
            payload = pack(
                InferRequest(
                    model="iris", inputs=scenarios.iris_tensors(), outputs=("output_label",)
                )
            )
            await measure(
                "nats-py on iris, 64 in flight",
                {"modelhost": pids["modelhost"], "nats-server": pids["nats-server"]},
                lambda: scenarios.nats_loop(
                    mesh.url,
                    subjects.infer("iris"),
                    payload,
                    scenarios.is_answer,
                    in_flight=64,
                    seconds=seconds,
                ),
            )
            echo = python_child("nats-echo", "bench.peers.nats_echo", mesh.url, "bench.echo")
            try:
                echo.wait_for("echo ready")
                await measure(
                    "NATS echo, 64 in flight",
                    {"echo responder": echo.process.pid, "nats-server": pids["nats-server"]},
                    lambda: scenarios.nats_loop(
                        mesh.url,
                        "bench.echo",
                        payload,
                        lambda d: d == payload,
                        in_flight=64,
                        seconds=seconds,
                    ),
                )
            finally:
                echo.stop()
        finally:
            await mesh.stop()
    child, inline_url = scenarios.aiohttp_inline()
    try:
        await measure(
            "plain aiohttp inline, 64 conn",
            {"aiohttp-inline": child.process.pid},
            lambda: load.http_load(
                f"{inline_url}/predict", body, JSON, connections=64, seconds=seconds
            ),
        )
    finally:
        child.stop()


if __name__ == "__main__":
    parser = argparse.ArgumentParser(prog="python -m bench.cpu_split", description=__doc__)
    parser.add_argument("--seconds", type=float, default=8.0)
    run(main(max(1.0, min(parser.parse_args().seconds, 60.0))))
