"""Instructions per REST iris request in the gateway or the modelhost, counted by callgrind.

    python -m bench.instructions gateway [--requests 300]
    python -m bench.instructions modelhost

CPU time per request moves with the machine's load (fewer messages share a
socket write when the rate falls); an instruction count does not. One
process of a real mesh (nats-server, gateway, iris modelhost, all on
127.0.0.1) runs under `valgrind --tool=callgrind` with instrumentation off
until a warm-up is done; then `--requests` REST predictions go one at a time
(one connection: no coalescing to vary from run to run) and the count is
divided by them. It counts user-space instructions only: the kernel's share
of each socket call (a third of the CPU on loopback) is not in it, so it
judges Python-level changes, and CPU time from /proc (bench.cpu_split) the rest.
"""

from __future__ import annotations

import argparse
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import aiohttp

from bench.__main__ import BenchProcesses
from bench.models import IRIS
from bench.processes import Child, free_port
from bench.servers import JSON, VALUES_JSON
from mlbuffet.roles.runner import run

WARM_UP_REQUESTS = 50
VALGRIND_START_S = 400.0
"""Starting a Python role under valgrind takes minutes on a busy machine."""


def total_instructions(out: Path) -> int:
    """The `totals:` of the dumps made by `callgrind_control -d` (`<out>.1`, ...), not of
    the one valgrind writes at exit (`<out>`), which counts the shutdown as well."""
    total = 0
    for dump in out.parent.glob(out.name + ".*"):
        for line in dump.read_text(errors="replace").splitlines():
            if line.startswith("totals:"):
                total += int(line.split()[1])
    return total


async def count(role: str, requests: int, folder: Path) -> float:
    out = folder / "callgrind.out"
    valgrind = ["valgrind", "--tool=callgrind", "--instr-atstart=no", f"--callgrind-out-file={out}"]
    mesh = BenchProcesses(folder)
    await mesh.start()
    try:
        await mesh.upload("iris", IRIS)
        if role == "gateway":
            port = free_port()
            argv = ["gateway", "--port", str(port)]
            ready = r"listening on (http://\S+)"
        else:
            argv = ["actors.modelhost", "--models", "iris"]
            ready = "ready, serving"
        counted = Child(
            f"callgrind-{role}",
            [*valgrind, sys.executable, "-m", argv[0], "--nats", mesh.url, *argv[1:]],
        )
        try:
            counted.wait_for(ready, VALGRIND_START_S)
            if role == "gateway":
                mesh.modelhost("--models", "iris")
                url = f"http://127.0.0.1:{port}/api/v1/models/iris/prediction"
            else:
                url = f"{mesh.http}/api/v1/models/iris/prediction"
            pid = str(counted.process.pid)
            async with aiohttp.ClientSession() as http:

                async def predict() -> None:
                    async with http.post(url, data=VALUES_JSON, headers=JSON) as response:
                        if response.status != 200:
                            raise RuntimeError(f"{response.status}: {await response.text()}")
                        await response.read()

                for _ in range(WARM_UP_REQUESTS):
                    await predict()
                subprocess.run(
                    ["callgrind_control", "-i", "on", pid], check=True, capture_output=True
                )
                for _ in range(requests):
                    await predict()
                subprocess.run(["callgrind_control", "-d", pid], check=True, capture_output=True)
        finally:
            counted.stop()
    finally:
        await mesh.stop()
    return total_instructions(out) / requests


async def main(role: str, requests: int) -> None:
    if shutil.which("valgrind") is None or shutil.which("callgrind_control") is None:
        raise SystemExit("valgrind is not installed (apt-get install valgrind)")
    with tempfile.TemporaryDirectory(prefix="mlbuffet-instructions-") as folder:
        per_request = await count(role, requests, Path(folder))
    print(f"{role}: {per_request:,.0f} instructions per REST iris request ({requests}, c=1)")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(prog="python -m bench.instructions", description=__doc__)
    parser.add_argument("role", choices=("gateway", "modelhost"))
    parser.add_argument("--requests", type=int, default=300, help="counted (default %(default)s)")
    args = parser.parse_args()
    run(main(args.role, max(10, min(args.requests, 5000))))
