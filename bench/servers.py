"""The HTTP servers the bench puts side by side: MLBuffet's routes and every peer.

Each peer runs from its own virtualenv (bench/peers/venvs.py), serves the same
iris ONNX file with onnxruntime and one intra-op thread
(bench/peers/onnx_model.py), and is loaded by the same generator at 1 and at
64 connections. A peer that is not installed, or does not start, gets a row
that says why. CPU per request is the CPU time (/proc) of every process of
the server over the 64-connection run, divided by the requests it answered.
"""

from __future__ import annotations

import asyncio
import json
import subprocess
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from bench import load, scenarios
from bench.load import Measured
from bench.models import IRIS, IRIS_ROW
from bench.peers.venvs import ENVS, PeerEnv
from bench.processes import ROOT, Child, cpu_seconds, free_port, python_child, wait_http

CONNECTIONS = (1, 64)
PEER_START_TIMEOUT_S = 180.0
"""Ray starts a local cluster and PyTriton a Triton server: both take tens of seconds."""

VALUES_JSON = json.dumps({"values": [IRIS_ROW]}).encode()
JSON = {"Content-Type": "application/json"}


@dataclass
class Cell:
    """One server at one connection count."""

    measured: Measured | None
    cpu_us: dict[str, float] = field(default_factory=dict)
    """CPU per request by process (MLBuffet) or for the whole server (peers), microseconds."""

    @property
    def cpu_total_us(self) -> float | None:
        return sum(self.cpu_us.values()) if self.cpu_us else None

    def to_dict(self) -> dict[str, Any]:
        return {
            "measured": self.measured.to_dict() if self.measured else None,
            "cpu_us_per_request": self.cpu_us,
        }


@dataclass
class ServerRow:
    server: str
    setting: str
    ours: bool = False
    cells: dict[int, Cell] = field(default_factory=dict)
    why: str = ""
    """Why there are no figures, or not all of them (not installed, did not start, failed)."""

    def rps(self, connections: int) -> float | None:
        cell = self.cells.get(connections)
        return cell.measured.rps if cell and cell.measured else None

    def measured(self, connections: int) -> Measured | None:
        cell = self.cells.get(connections)
        return cell.measured if cell else None

    def to_dict(self) -> dict[str, Any]:
        return {
            "server": self.server,
            "setting": self.setting,
            "ours": self.ours,
            "why": self.why,
            "cells": {str(c): cell.to_dict() for c, cell in self.cells.items()},
        }


async def measure(
    url: str,
    body: bytes,
    headers: dict[str, str],
    seconds: float,
    pids: Mapping[str, Sequence[int]] | Callable[[], Mapping[str, Sequence[int]]],
    prefer_wrk: bool,
) -> dict[int, Cell]:
    """The server at each connection count, and its CPU per request at each."""
    status = await scenarios.probe_status(url, body, headers)
    if status != 200:
        raise RuntimeError(f"{url} answers {status} to the bench's request")
    cells = {}
    for connections in CONNECTIONS:
        who = pids() if callable(pids) else pids
        before = {name: sum(cpu_seconds(p) for p in group) for name, group in who.items()}
        measured = await load.http_load(
            url, body, headers, connections=connections, seconds=seconds, prefer_wrk=prefer_wrk
        )
        after = {name: sum(cpu_seconds(p) for p in group) for name, group in who.items()}
        n = max(1, measured.requests)
        cpu = {name: 1e6 * (after[name] - before[name]) / n for name in who}
        cells[connections] = Cell(measured, cpu)
    return cells


# -- the peers -----------------------------------------------------------------


@dataclass(frozen=True)
class Peer:
    server: str
    setting: str
    env: str | None
    """Its virtualenv in bench/peers/venvs.py; None: it runs in MLBuffet's own."""
    start: Callable[[Path, str], tuple[Child, str]]
    """(folder, python) -> the running server and the URL to POST to."""
    body: bytes = VALUES_JSON


def start_inline(folder: Path, python: str) -> tuple[Child, str]:
    child, url = scenarios.aiohttp_inline()
    return child, f"{url}/predict"


def start_mlserver(parallel_workers: int | None) -> Callable[[Path, str], tuple[Child, str]]:
    def start(folder: Path, python: str) -> tuple[Child, str]:
        child, url = scenarios.mlserver(
            python, folder / f"mlserver-{parallel_workers}", parallel_workers
        )
        return child, f"{url}/v2/models/iris/infer"

    return start


def start_litserve(folder: Path, python: str) -> tuple[Child, str]:
    port = free_port()
    child = python_child(
        "litserve", "bench.peers.litserve_server", str(IRIS), str(port), python=python
    )
    url = f"http://127.0.0.1:{port}"
    ready(child, lambda: wait_http(f"{url}/health", PEER_START_TIMEOUT_S, 200, child))
    return child, f"{url}/predict"


def start_bentoml(folder: Path, python: str) -> tuple[Child, str]:
    port = free_port()
    child = Child(
        "bentoml",
        [python, "-m", "bentoml", "serve", "bench.peers.bentoml_service:Iris", *local(port)],
        env={"MLBUFFET_BENCH_MODEL": str(IRIS), "BENTOML_DO_NOT_TRACK": "True"},
        cwd=ROOT,
    )
    url = f"http://127.0.0.1:{port}"
    ready(child, lambda: wait_http(f"{url}/readyz", PEER_START_TIMEOUT_S, 200, child))
    return child, f"{url}/predict"


def local(port: int) -> list[str]:
    return ["--host", "127.0.0.1", "--port", str(port)]


def start_rayserve(folder: Path, python: str) -> tuple[Child, str]:
    port = free_port()
    child = python_child(
        "rayserve",
        "bench.peers.rayserve_app",
        str(IRIS),
        str(port),
        python=python,
        env={"RAY_USAGE_STATS_ENABLED": "0", "RAY_TMPDIR": str(folder)},
    )
    ready(child, lambda: child.wait_for("rayserve ready", PEER_START_TIMEOUT_S))
    return child, f"http://127.0.0.1:{port}/predict"


def start_pytriton(folder: Path, python: str) -> tuple[Child, str]:
    ports = [free_port() for _ in range(3)]
    libdir = subprocess.run(
        [python, "-c", "import sysconfig; print(sysconfig.get_config_var('LIBDIR'))"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.strip()
    child = python_child(
        "pytriton",
        "bench.peers.pytriton_server",
        str(IRIS),
        *map(str, ports),
        python=python,
        env={"LD_LIBRARY_PATH": libdir, "HOME": str(folder)},
    )
    url = f"http://127.0.0.1:{ports[0]}"
    ready(child, lambda: wait_http(f"{url}/v2/models/iris/ready", PEER_START_TIMEOUT_S, 200, child))
    return child, f"{url}/v2/models/iris/infer"


def ready(child: Child, wait: Callable[[], object]) -> None:
    """Wait for a peer; on failure stop it and raise with the tail of its output."""
    try:
        wait()
    except RuntimeError as exc:
        child.stop()
        tail = "\n".join(child.lines[-15:])
        raise RuntimeError(f"{child.name} did not start ({exc}):\n{tail}") from None


PEERS = (
    Peer(
        "onnxruntime + aiohttp inline (the in-process HTTP ceiling)",
        "one process, onnxruntime called in the handler",
        None,
        start_inline,
    ),
    Peer(
        "MLServer 1.7.1",
        "parallel_workers: 0 (inference in the server process)",
        "mlserver",
        start_mlserver(0),
        scenarios.V2_JSON,
    ),
    Peer(
        "MLServer 1.7.1",
        "defaults (parallel_workers: 1)",
        "mlserver",
        start_mlserver(None),
        scenarios.V2_JSON,
    ),
    Peer(
        "Triton via PyTriton 0.7.0 (its bundled server)",
        "2 instances (one per core), its default dynamic batching (max 4, no delay)",
        "pytriton",
        start_pytriton,
        scenarios.V2_JSON,
    ),
    Peer(
        "LitServe 0.2.19",
        "2 workers (one per core), 1 API server, fast_queue, no batching",
        "litserve",
        start_litserve,
    ),
    Peer(
        "BentoML 1.4.40",
        'workers="cpu_count" (2), sync API, no adaptive batching',
        "bentoml",
        start_bentoml,
    ),
    Peer(
        "Ray Serve 2.60.0",
        "2 replicas x 1 CPU, max_ongoing_requests 64, no batching",
        "rayserve",
        start_rayserve,
    ),
)


async def peer_row(peer: Peer, folder: Path, seconds: float, prefer_wrk: bool) -> ServerRow:
    row = ServerRow(peer.server, peer.setting)
    env: PeerEnv | None = ENVS[peer.env] if peer.env else None
    if env is not None and not env.ready():
        row.why = f"not installed: python -m bench.peers.venvs {env.name}"
        return row
    python = str(env.python) if env else ""
    try:
        child, url = await asyncio.to_thread(peer.start, folder, python)
    except Exception as exc:
        row.why = f"did not start: {str(exc).splitlines()[0]}"
        return row
    try:
        row.cells = await measure(
            url, peer.body, JSON, seconds, lambda: {"server": child.tree()}, prefer_wrk
        )
    except Exception as exc:
        row.why = f"{type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}"
    finally:
        await asyncio.to_thread(child.stop)
    return row
