"""MLBuffet's benchmark: one command, one table, ratios to the references measured in the same run.

    python -m bench                      # every scenario, 10 s each (about 4 minutes)
    python -m bench --quick              # 3 s each
    python -m bench --json results.json  # the table as JSON too
    python -m bench --mlserver-python .bench-mlserver-venv/bin/python
                                         # compare with MLServer (bench/peers/mlserver_venv.sh)

It starts what it needs on 127.0.0.1 (an embedded nats-server, a gateway and
modelhosts as separate processes, the reference servers), runs each scenario
for a bounded time, and stops everything it started. HTTP load comes from
wrk (with Lua bodies) when it is installed, else from a bounded Python
generator; the table says which. See docs/performance.md.
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
from collections.abc import Callable
from pathlib import Path
from typing import Any

import aiohttp

from bench import load, profile, scenarios
from bench.models import IRIS, IRIS_ROW, build_squeezenet
from bench.processes import Child, python_child
from bench.scenarios import REFERENCES, REST_CONNECTIONS, Row, guarded, ratio
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
        "--mlserver-python",
        metavar="PYTHON",
        help="python of a separate virtualenv with mlserver and onnxruntime (never this one)",
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
        help="skip groups: ort, nats, rest, peers, cnn, scale, up",
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


async def run_all(args: argparse.Namespace) -> list[Row]:
    seconds = args.seconds
    skip = args.skip
    prefer_wrk = not args.no_wrk
    rows: list[Row] = []
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
            if "nats" not in skip:
                print("bench: NATS", file=sys.stderr)
                echo = await guarded("raw NATS echo", scenarios.nats_echo(mesh.url, seconds))
                rows.append(echo)
            await mesh.upload("iris", IRIS)
            iris_host = mesh.modelhost("--models", "iris")
            if "nats" not in skip:
                rows.append(
                    await guarded("nats-py iris", scenarios.nats_iris(mesh.url, seconds, echo))
                )
                rows.append(
                    await guarded("client iris", scenarios.client_iris(mesh.url, seconds, echo))
                )
            inline = mlserver_row = None
            if "peers" not in skip:
                print("bench: reference servers", file=sys.stderr)
                inline = await guarded("aiohttp inline", aiohttp_inline_row(seconds, prefer_wrk))
                rows.append(inline)
                mlserver_row = await guarded(
                    "MLServer", mlserver_rest_row(args, folder, prefer_wrk)
                )
                rows.append(mlserver_row)
            if "rest" not in skip:
                print("bench: REST", file=sys.stderr)
                targets = None
                if args.profile:
                    targets = {"gateway": mesh.children[0], "modelhost": iris_host}
                rows += await rest_rows(
                    mesh, seconds, prefer_wrk, inline, mlserver_row, args.profile, targets
                )
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
        if "up" not in skip:
            print("bench: mlbuffet up", file=sys.stderr)
            rows.append(await guarded("up", scenarios.up_to_first_prediction()))
    finally:
        shutil.rmtree(folder, ignore_errors=True)
    return rows


async def peer_row(
    start: Callable[[], tuple[Child, str]],
    scenario: str,
    path: str,
    body: bytes,
    seconds: float,
    prefer_wrk: bool,
    reference: str,
    versus: str,
) -> Row:
    """Start a reference server, load it with JSON like our REST rows, stop it."""
    child, url = await asyncio.to_thread(start)
    try:
        row = await scenarios.http_row(
            scenario,
            url + path,
            body,
            {"Content-Type": "application/json"},
            seconds,
            prefer_wrk=prefer_wrk,
        )
    finally:
        await asyncio.to_thread(child.stop)
    row.ratio = ratio(row.measured.rps if row.measured else None, REFERENCES[reference])
    row.versus = versus
    return row


async def aiohttp_inline_row(seconds: float, prefer_wrk: bool) -> Row:
    return await peer_row(
        scenarios.aiohttp_inline,
        f"plain aiohttp + onnxruntime inline, iris, {REST_CONNECTIONS} conn",
        "/predict",
        json.dumps({"values": IRIS_ROW}).encode(),
        seconds,
        prefer_wrk,
        "aiohttp_inline",
        "issue 8.4k (16 conn)",
    )


async def mlserver_rest_row(args: argparse.Namespace, folder: Path, prefer_wrk: bool) -> Row:
    scenario = f"MLServer 1.7 /v2 JSON, iris, {REST_CONNECTIONS} conn"
    python = os.path.abspath(args.mlserver_python) if args.mlserver_python else None
    if not python:
        return scenarios.unavailable(
            scenario, "give --mlserver-python (bench/peers/mlserver_venv.sh)"
        )
    return await peer_row(
        lambda: scenarios.mlserver(python, folder / "mlserver"),
        scenario,
        "/v2/models/iris/infer",
        scenarios.V2_JSON,
        args.seconds,
        prefer_wrk,
        "mlserver",
        "issue 1.6k",
    )


async def rest_rows(
    mesh: BenchProcesses,
    seconds: float,
    prefer_wrk: bool,
    inline: Row | None,
    mlserver_row: Row | None,
    profile_dir: Path | None = None,
    targets: dict[str, Child] | None = None,
) -> list[Row]:
    json_headers = {"Content-Type": "application/json"}
    binary, binary_headers = scenarios.v2_binary_body()
    inline_rps = inline.measured.rps if inline and inline.measured else None
    mlserver_rps = mlserver_row.measured.rps if mlserver_row and mlserver_row.measured else None
    out = []
    for scenario, path, body, headers in (
        (
            f"REST JSON /api/v1/models/iris/prediction, {REST_CONNECTIONS} conn",
            "/api/v1/models/iris/prediction",
            json.dumps({"values": IRIS_ROW}).encode(),
            json_headers,
        ),
        (
            f"REST /v2 JSON infer, iris, {REST_CONNECTIONS} conn",
            "/v2/models/iris/infer",
            scenarios.V2_JSON,
            json_headers,
        ),
        (
            f"REST /v2 binary infer, iris, {REST_CONNECTIONS} conn",
            "/v2/models/iris/infer",
            binary,
            binary_headers,
        ),
    ):
        recorders = []
        if profile_dir is not None and targets and path.startswith("/api/"):
            profile_dir.mkdir(parents=True, exist_ok=True)
            for name, child in targets.items():
                samples = profile_dir / f"{name}.txt"
                recorder = profile.start(child.process.pid, seconds, samples)
                if recorder is not None:
                    recorders.append((recorder, samples))
        row = await guarded(
            scenario,
            scenarios.http_row(
                scenario, mesh.http + path, body, headers, seconds, prefer_wrk=prefer_wrk
            ),
        )
        if recorders:
            for recorder, _ in recorders:
                await asyncio.to_thread(recorder.wait, 60)
            assert profile_dir is not None
            text = "\n\n".join(profile.summary(p) for _, p in recorders if p.exists())
            (profile_dir / "summary.txt").write_text(text + "\n")
            print(f"bench: profiles in {profile_dir}", file=sys.stderr)
        if row.measured:
            if mlserver_rps:
                row.ratio, row.versus, row.target = (
                    ratio(row.measured.rps, mlserver_rps),
                    "MLServer (this run)",
                    3.0,
                )
                if mlserver_row and mlserver_row.measured:
                    row.extra["p99_vs_mlserver"] = ratio(
                        row.measured.p99_ms, mlserver_row.measured.p99_ms
                    )
                    row.note = (
                        f"p99 {row.extra['p99_vs_mlserver']:.2f}x MLServer's (target <= 0.33)"
                    )
            if inline_rps and path.startswith("/api/"):
                value = ratio(row.measured.rps, inline_rps)
                row.extra["vs_aiohttp_inline"] = value
                text = f"{value:.2f}x aiohttp-inline (target >= 0.6)"
                row.note = f"{row.note}; {text}" if row.note else text
        out.append(row)
    return out


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


def fmt(value: float | None, digits: int = 1) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "-"
    if abs(value) >= 1000:
        return f"{value:,.0f}"
    return f"{value:.{digits}f}"


def table(rows: list[Row], generator: str) -> str:
    header = ("scenario", "rate", "p50 ms", "p99 ms", "ratio", "versus", "target")
    lines = []
    for row in rows:
        m = row.measured
        if m is None:
            lines.append((row.scenario, row.note, "", "", "", "", ""))
            continue
        rate = f"{m.p50_ms / 1000:.2f} s" if row.unit == "s" else f"{fmt(m.rps)} {row.unit}"
        target = ""
        if row.target is not None:
            sign = "<=" if row.unit == "s" else ">="
            target = f"{sign}{row.target:g}{' s' if row.unit == 's' else 'x'} {'met' if row.met else 'MISSED'}"
        lines.append(
            (
                row.scenario,
                rate,
                fmt(m.p50_ms, 2) if row.unit != "s" else "",
                fmt(m.p99_ms, 2) if row.unit != "s" else "",
                f"{row.ratio:.2f}" + ("" if row.unit == "s" else "x")
                if row.ratio is not None
                else "-",
                row.versus,
                target,
            )
        )
    widths = [max(len(str(x)) for x in col) for col in zip(header, *lines, strict=True)]
    out = [" | ".join(str(c).ljust(w) for c, w in zip(header, widths, strict=True))]
    out.append("-+-".join("-" * w for w in widths))
    out += [
        " | ".join(str(c).ljust(w) for c, w in zip(line, widths, strict=True)) for line in lines
    ]
    notes = [f"- {r.scenario}: {r.note}" for r in rows if r.measured and r.note]
    out += ["", f"HTTP load: {generator}; {os.cpu_count()} cores; {platform.python_version()}"]
    return "\n".join(out + notes)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    generator = (
        f"wrk ({load.wrk_path()}), 1 thread, Lua bodies"
        if load.wrk_path() and not args.no_wrk
        else "Python aiohttp generator in the bench process (no wrk, or --no-wrk)"
    )
    began = time.perf_counter()
    rows: list[Row] = run(run_all(args))
    print(table(rows, generator))
    print(f"(run took {time.perf_counter() - began:.0f} s, {args.seconds:g} s per scenario)")
    if args.json:
        document: dict[str, Any] = {
            "at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
            "seconds_per_scenario": args.seconds,
            "cores": os.cpu_count(),
            "python": platform.python_version(),
            "http_generator": generator,
            "references": REFERENCES,
            "rows": [row.to_dict() for row in rows],
        }
        args.json.write_text(json.dumps(document, indent=2, default=str) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
