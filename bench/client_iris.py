"""One iris prediction at a time: REST /api/v1, /v2 JSON and binary, and mlbuffet.Client over NATS.

    python -m bench.client_iris [--requests 500]

Starts nats-server, one modelhost and one gateway on ephemeral loopback
ports, uploads the seed iris model, warms up, then times `--requests`
sequential predictions on each path (interleaved, so both see the same
machine load) and prints latency percentiles. Sequential latency is what
one caller sees; throughput under load is bench.rest_iris's job.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import aiohttp
import numpy as np

from mlbuffet import Client
from mlbuffet.natsd.server import NatsServer, NatsServerConfig

IRIS = Path(__file__).resolve().parents[1] / "tests" / "fixtures" / "seed" / "iris.onnx"
ROW = [2, 5, 1, 4]
READY_WAIT_S = 30


def percentiles(seconds: list[float]) -> str:
    ordered = sorted(seconds)
    at = {
        p: ordered[min(len(ordered) - 1, int(len(ordered) * p / 100))] * 1000 for p in (50, 90, 99)
    }
    return ", ".join(f"p{p} {ms:.2f} ms" for p, ms in at.items())


def role(name: str, nats_url: str, *extra: str, read: bool = False) -> subprocess.Popen[str]:
    """Start a role; `read` keeps its output to read (the gateway's port), else it is dropped."""
    return subprocess.Popen(
        [sys.executable, "-m", "mlbuffet.cli.main", name, "--nats", nats_url, *extra],
        stdout=subprocess.PIPE if read else subprocess.DEVNULL,
        stderr=subprocess.STDOUT,
        text=True,
    )


async def measure(requests: int) -> None:
    with tempfile.TemporaryDirectory(prefix="mlbuffet-bench-") as folder:
        server = NatsServer(NatsServerConfig(data_dir=Path(folder) / "nats", port=0))
        url = await server.start()
        host = role("modelhost", url)
        gateway = role("gateway", url, "--port", "0", read=True)
        try:
            assert gateway.stdout is not None
            rest = None
            while rest is None:
                line = await asyncio.to_thread(gateway.stdout.readline)
                if not line:
                    raise SystemExit("the gateway stopped before it listened")
                if found := re.search(r"listening on (http://\S+)", line):
                    rest = found.group(1)
            async with await Client.connect(url) as client, aiohttp.ClientSession() as http:
                await client.upload("iris", IRIS)
                row = np.array([ROW], dtype=np.float32)
                deadline = time.monotonic() + READY_WAIT_S
                while True:
                    try:
                        await client.infer("iris", row)
                        break
                    except Exception:
                        if time.monotonic() > deadline:
                            raise
                        await asyncio.sleep(0.1)

                async def over_rest() -> None:
                    path = f"{rest}/api/v1/models/iris/prediction"
                    async with http.post(path, json={"values": ROW}) as response:
                        assert response.status == 200
                        await response.read()

                v2_path = f"{rest}/v2/models/iris/infer"
                v2_json = {
                    "inputs": [
                        {"name": "float_input", "shape": [1, 4], "datatype": "FP32", "data": ROW}
                    ],
                    "outputs": [{"name": "output_label"}],
                }
                header = json.dumps(
                    {
                        "inputs": [
                            {
                                "name": "float_input",
                                "shape": [1, 4],
                                "datatype": "FP32",
                                "parameters": {"binary_data_size": 16},
                            }
                        ],
                        "outputs": [{"name": "output_label", "parameters": {"binary_data": True}}],
                    }
                ).encode()
                v2_binary = header + row.tobytes()

                async def over_v2_json() -> None:
                    async with http.post(v2_path, json=v2_json) as response:
                        assert response.status == 200, await response.text()
                        await response.read()

                async def over_v2_binary() -> None:
                    async with http.post(
                        v2_path,
                        data=v2_binary,
                        headers={
                            "Inference-Header-Content-Length": str(len(header)),
                            "Content-Type": "application/octet-stream",
                        },
                    ) as response:
                        assert response.status == 200, await response.text()
                        await response.read()

                calls = {
                    "rest": over_rest,
                    "v2-json": over_v2_json,
                    "v2-binary": over_v2_binary,
                    "array": lambda: client.infer("iris", row),
                    "named": lambda: client.infer("iris", {"float_input": row}),
                }
                timings: dict[str, list[float]] = {name: [] for name in calls}
                for round_ in range(50 + requests):
                    for name, call in calls.items():
                        started = time.perf_counter()
                        await call()
                        if round_ >= 50:
                            timings[name].append(time.perf_counter() - started)
            print(f"REST /api/v1 (JSON values)           : {percentiles(timings['rest'])}")
            print(f"REST /v2 infer, JSON                 : {percentiles(timings['v2-json'])}")
            print(f"REST /v2 infer, binary extension     : {percentiles(timings['v2-binary'])}")
            print(f"NATS mlbuffet.Client, one array      : {percentiles(timings['array'])}")
            print(f"NATS mlbuffet.Client, named input    : {percentiles(timings['named'])}")
        finally:
            for process in (gateway, host):
                process.terminate()
                process.wait(10)
            await server.stop()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=500)
    asyncio.run(measure(parser.parse_args().requests))


if __name__ == "__main__":
    main()
