"""MLBuffet's benchmark: one command, one table, ratios to the references measured in the same run.

    python -m bench                      # every scenario, 10 s each (466 s on a busy 2-core machine)
    python -m bench --quick              # 3 s each
    python -m bench --json results.json  # the table as JSON too
    python -m bench.peers.venvs          # first: every peer's own virtualenv (once)

It starts what it needs on 127.0.0.1 (an embedded nats-server, a gateway and
modelhosts as separate processes, every peer from its own virtualenv), runs
each scenario for a bounded time, and stops everything it started. HTTP load
comes from wrk (with Lua bodies) when it is installed, else from a bounded
Python generator; the table says which. Triton's perf_analyzer measures
MLBuffet's /v2 as well when its virtualenv exists. See docs/performance.md.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import math
import os
import platform
import shutil
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp

from bench import load, perf_analyzer, profile, report, scenarios, servers
from bench.models import IRIS, build_squeezenet
from bench.processes import Child, cpu_seconds, python_child
from bench.scenarios import REFERENCES, Row, guarded, ratio
from bench.servers import ServerRow
from mlbuffet.natsd.server import NatsServer, NatsServerConfig
from mlbuffet.roles.runner import run

CNN_SETTINGS = {"max_batch_size": 8, "max_queue_delay_us": 2000}
"""squeezenet's batching in the CNN scenarios: up to 8 images a run, 2 ms to gather them."""


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m bench",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument(
        "--seconds", type=float, default=10.0, help="per scenario (default %(default)s)"
    )
    parser.add_argument("--quick", action="store_true", help="3 s per scenario")
    parser.add_argument("--json", type=Path, metavar="PATH", help="also write the results here")
    parser.add_argument(
        "--markdown",
        type=Path,
        metavar="PATH",
        help="also write the servers' table and the targets as Markdown (for docs/)",
    )
    parser.add_argument("--no-wrk", action="store_true", help="use the Python HTTP generator")
    parser.add_argument(
        "--profile",
        type=Path,
        metavar="DIR",
        help="py-spy the gateway and the iris modelhost during the REST JSON scenario",
    )
    parser.add_argument(
        "--skip",
        default="",
        metavar="NAME[,NAME]",
        help="skip groups: ort, nats, rest, perf_analyzer, peers, cnn, scale, up",
    )
    args = parser.parse_args(argv)
    if args.quick:
        args.seconds = 3.0
    args.seconds = max(1.0, min(args.seconds, 120.0))
    args.skip = {s.strip() for s in args.skip.split(",") if s.strip()}
    return args


class BenchProcesses:
    """nats-server + gateway + modelhosts, each started once and stopped at the end."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self.server = NatsServer(NatsServerConfig(data_dir=folder / "nats", port=0))
        self.children: list[Child] = []
        self.url = ""
        self.http = ""

    async def start(self) -> None:
        await self.server.start()
        assert self.server.url is not None
        self.url = self.server.url
        gateway = self.spawn("gateway", "gateway", "--port", "0")
        self.http = gateway.wait_for(r"listening on (http://\S+)").group(1)

    def spawn(self, name: str, module: str, *args: str) -> Child:
        child = python_child(name, module, "--nats", self.url, "--log-level", "warning", *args)
        self.children.append(child)
        return child

    def modelhost(self, *args: str) -> Child:
        child = self.spawn("modelhost", "actors.modelhost", *args)
        child.wait_for("ready, serving")
        return child

    async def upload(self, name: str, path: Path, **settings: str) -> None:
        form = aiohttp.FormData()
        form.add_field("path", path.read_bytes(), filename=path.name)
        for key, value in settings.items():
            form.add_field(key, value)
        async with (
            aiohttp.ClientSession() as http,
            http.put(f"{self.http}/api/v1/models/{name}", data=form) as response,
        ):
            if response.status != 201:
                raise RuntimeError(f"upload of {name}: {response.status} {await response.text()}")

    async def stop(self) -> None:
        for child in reversed(self.children):
            await asyncio.to_thread(child.stop)
        self.children.clear()
        await self.server.stop()


@dataclass
class Results:
    rows: list[Row] = field(default_factory=list)
    servers: list[ServerRow] = field(default_factory=list)
    modelhost_nats_cpu_us: float | None = None
    """The iris modelhost's CPU per request in the raw nats-py scenario (target 3)."""


async def run_all(args: argparse.Namespace) -> Results:
    seconds = args.seconds
    skip = args.skip
    prefer_wrk = not args.no_wrk
    out = Results()
    rows = out.rows
    folder = Path(tempfile.mkdtemp(prefix="mlbuffet-bench-"))
    squeezenet = build_squeezenet(folder / "squeezenet.onnx")
    try:
        best_cnn = math.nan
        if "ort" not in skip:
            print("bench: onnxruntime in-process", file=sys.stderr)
            rows.append(scenarios.ort_iris(seconds))
            cnn_rows = [
                scenarios.ort_squeezenet(squeezenet, seconds, rows=1, threads=1),
                scenarios.ort_squeezenet(squeezenet, seconds, rows=8, threads=2),
                scenarios.ort_squeezenet(squeezenet, seconds, rows=1, threads=1, parallel=2),
            ]
            rows += cnn_rows
            best_cnn = max(r.measured.rps for r in cnn_rows if r.measured)
        mesh = BenchProcesses(folder)
        await mesh.start()
        try:
            echo = Row("raw NATS echo", None)
            await mesh.upload("iris", IRIS)
            iris_host = mesh.modelhost("--models", "iris")
            if "nats" not in skip:
                print("bench: NATS", file=sys.stderr)
                echo = await guarded("raw NATS echo", scenarios.nats_echo(mesh.url, seconds))
                rows.append(echo)
                before = cpu_seconds(iris_host.process.pid)
                nats_iris = await guarded(
                    "nats-py iris", scenarios.nats_iris(mesh.url, seconds, echo)
                )
                if nats_iris.measured and nats_iris.measured.requests:
                    spent = cpu_seconds(iris_host.process.pid) - before
                    out.modelhost_nats_cpu_us = 1e6 * spent / nats_iris.measured.requests
                    nats_iris.note = f"modelhost CPU {out.modelhost_nats_cpu_us:.0f} us per request"
                rows.append(nats_iris)
                rows.append(
                    await guarded("client iris", scenarios.client_iris(mesh.url, seconds, echo))
                )
            if "rest" not in skip:
                print("bench: MLBuffet over HTTP", file=sys.stderr)
                out.servers += await mlbuffet_rows(mesh, iris_host, seconds, prefer_wrk, args)
            if "perf_analyzer" not in skip:
                print("bench: perf_analyzer against /v2", file=sys.stderr)
                out.servers.append(await perf_analyzer_row(mesh, seconds))
            if "cnn" not in skip or "scale" not in skip:
                await mesh.upload(
                    "squeezenet", squeezenet, **{k: str(v) for k, v in CNN_SETTINGS.items()}
                )
            if "cnn" not in skip:
                print("bench: CNN", file=sys.stderr)
                host = mesh.modelhost("--models", "squeezenet")
                row = await guarded(
                    "cnn",
                    scenarios.cnn_row(
                        mesh.url,
                        seconds,
                        f"squeezenet over NATS, {scenarios.CNN_CLIENTS} clients, 1 modelhost "
                        f"(batching {CNN_SETTINGS['max_batch_size']})",
                    ),
                )
                row.ratio, row.versus, row.target = (
                    ratio(row.measured.rps if row.measured else None, best_cnn),
                    "best in-process (this run)",
                    0.9,
                )
                rows.append(row)
                await asyncio.to_thread(host.stop)
            if "scale" not in skip:
                print("bench: one modelhost against two", file=sys.stderr)
                rows += await scale_rows(mesh, seconds)
        finally:
            await mesh.stop()
        if "peers" not in skip:
            # After the mesh has stopped: no MLBuffet process shares the cores with a peer.
            for peer in servers.PEERS:
                print(f"bench: {peer.server}, {peer.setting}", file=sys.stderr)
                out.servers.append(await servers.peer_row(peer, folder, seconds, prefer_wrk))
        if "up" not in skip:
            print("bench: mlbuffet up", file=sys.stderr)
            rows.append(await guarded("up", scenarios.up_to_first_prediction()))
    finally:
        shutil.rmtree(folder, ignore_errors=True)
    return out


async def mlbuffet_rows(
    mesh: BenchProcesses,
    iris_host: Child,
    seconds: float,
    prefer_wrk: bool,
    args: argparse.Namespace,
) -> list[ServerRow]:
    """MLBuffet's HTTP routes at 1 and 64 connections, with each process's CPU per request."""
    assert mesh.server.pid is not None
    pids = {
        "gateway": [mesh.children[0].process.pid],
        "modelhost": [iris_host.process.pid],
        "nats-server": [mesh.server.pid],
    }
    setting = "gateway + 1 modelhost + nats-server, no batching"
    binary, binary_headers = scenarios.v2_binary_body()
    out = []
    for server, path, body, headers in (
        (
            report.OURS_REFERENCE,
            "/api/v1/models/iris/prediction",
            servers.VALUES_JSON,
            servers.JSON,
        ),
        ("MLBuffet /v2 JSON", "/v2/models/iris/infer", scenarios.V2_JSON, servers.JSON),
        ("MLBuffet /v2 binary", "/v2/models/iris/infer", binary, binary_headers),
    ):
        row = ServerRow(server, setting, ours=True)
        recorders = []
        if args.profile is not None and path.startswith("/api/"):
            args.profile.mkdir(parents=True, exist_ok=True)
            for name, child in (("gateway", mesh.children[0]), ("modelhost", iris_host)):
                samples = args.profile / f"{name}.txt"
                recorder = profile.start(child.process.pid, 2 * seconds, samples)
                if recorder is not None:
                    recorders.append((recorder, samples))
        try:
            row.cells = await servers.measure(
                mesh.http + path, body, headers, seconds, pids, prefer_wrk
            )
        except Exception as exc:
            row.why = f"{type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}"
        if recorders:
            for recorder, _ in recorders:
                await asyncio.to_thread(recorder.wait, 60)
            text = "\n\n".join(profile.summary(p) for _, p in recorders if p.exists())
            (args.profile / "summary.txt").write_text(text + "\n")
            print(f"bench: profiles in {args.profile}", file=sys.stderr)
        out.append(row)
    return out


async def perf_analyzer_row(mesh: BenchProcesses, seconds: float) -> ServerRow:
    row = ServerRow(
        "MLBuffet /v2, load from Triton's perf_analyzer",
        "binary tensors, async HTTP, same mesh",
        ours=True,
    )
    if not perf_analyzer.available():
        row.why = "not installed: python -m bench.peers.venvs perf_analyzer"
        return row
    host_port = mesh.http.removeprefix("http://")
    try:
        for connections in servers.CONNECTIONS:
            measured = await perf_analyzer.measure(host_port, "iris", connections, seconds)
            row.cells[connections] = servers.Cell(measured)
    except Exception as exc:
        row.why = str(exc).splitlines()[0]
    return row


async def scale_rows(mesh: BenchProcesses, seconds: float) -> list[Row]:
    """One modelhost of one core against two: the mesh scales by adding processes."""
    one_core = ("--models", "squeezenet", "--workers", "1", "--intra-op-threads", "1")
    first = mesh.modelhost(*one_core)
    one = await guarded(
        "scale 1",
        scenarios.cnn_row(mesh.url, seconds, "squeezenet, 1 modelhost x 1 core, 16 clients"),
    )
    second = mesh.modelhost(*one_core)
    two = await guarded(
        "scale 2",
        scenarios.cnn_row(mesh.url, seconds, "squeezenet, 2 modelhosts x 1 core, 16 clients"),
    )
    for child in (second, first):
        await asyncio.to_thread(child.stop)
    two.ratio = ratio(
        two.measured.rps if two.measured else None, one.measured.rps if one.measured else None
    )
    two.versus, two.target = "1 modelhost (this run)", 1.8
    return [one, two]


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    generator = (
        f"wrk ({load.wrk_path()}), 1 thread, Lua bodies"
        if load.wrk_path() and not args.no_wrk
        else "Python aiohttp generator in the bench process (no wrk, or --no-wrk)"
    )
    began = time.perf_counter()
    results: Results = run(run_all(args))
    found = report.targets(results.servers, results.rows, results.modelhost_nats_cpu_us)
    print(report.report(results.servers, results.rows, found, generator))
    print(f"(run took {time.perf_counter() - began:.0f} s, {args.seconds:g} s per scenario)")
    if args.markdown:
        args.markdown.write_text(report.markdown(results.servers, found))
    if args.json:
        document: dict[str, Any] = {
            "at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
            "seconds_per_scenario": args.seconds,
            "cores": os.cpu_count(),
            "python": platform.python_version(),
            "http_generator": generator,
            "references": REFERENCES,
            "servers": [server.to_dict() for server in results.servers],
            "rows": [row.to_dict() for row in results.rows],
            "modelhost_nats_cpu_us_per_request": results.modelhost_nats_cpu_us,
            "targets": [t.to_dict() for t in found],
        }
        args.json.write_text(json.dumps(document, indent=2, default=str) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
