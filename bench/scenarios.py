"""The benchmark's scenarios: each runs for a bounded time and gives one Row of the table."""

from __future__ import annotations

import asyncio
import json
import math
import os
import sys
import tempfile
import threading
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp
import msgpack
import numpy as np

from bench import load
from bench.load import Measured
from bench.models import IRIS, IRIS_INPUT, IRIS_ROW, SQUEEZENET_INPUT, squeezenet_batch
from bench.processes import ROOT, Child, free_port, python_child, wait_http
from mlbuffet.protocol import subjects
from mlbuffet.protocol.inference import InferRequest, Tensor
from mlbuffet.protocol.wire import pack

REFERENCES = {
    "ort_iris": 118_000.0,
    "ort_squeezenet_b1": 199.0,
    "ort_squeezenet_b8": 338.0,
    "nats_echo": 26_500.0,
}
"""The issue's figures, measured on a machine like this one (2 cores)."""

NATS_IN_FLIGHT = 64
CNN_CLIENTS = 16
V2_JSON = json.dumps(
    {"inputs": [{"name": IRIS_INPUT, "shape": [1, 4], "datatype": "FP32", "data": IRIS_ROW}]}
).encode()


def v2_binary_body() -> tuple[bytes, dict[str, str]]:
    """The Open Inference Protocol's binary extension: a JSON header, then the raw tensor."""
    raw = np.array([IRIS_ROW], dtype=np.float32).tobytes()
    header = json.dumps(
        {
            "inputs": [
                {
                    "name": IRIS_INPUT,
                    "shape": [1, 4],
                    "datatype": "FP32",
                    "parameters": {"binary_data_size": len(raw)},
                }
            ],
            "outputs": [{"name": "output_label", "parameters": {"binary_data": True}}],
        }
    ).encode()
    return header + raw, {
        "Content-Type": "application/octet-stream",
        "Inference-Header-Content-Length": str(len(header)),
    }


@dataclass
class Row:
    scenario: str
    measured: Measured | None
    unit: str = "req/s"
    ratio: float | None = None
    versus: str = ""
    target: float | None = None
    """The ratio the issue asks for (a minimum; for `up`, a maximum in seconds)."""
    note: str = ""
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def met(self) -> bool | None:
        if self.target is None or self.ratio is None:
            return None
        if self.unit == "s":
            return self.ratio <= self.target
        return self.ratio >= self.target

    def to_dict(self) -> dict[str, Any]:
        return {
            "scenario": self.scenario,
            "unit": self.unit,
            "measured": self.measured.to_dict() if self.measured else None,
            "ratio": self.ratio,
            "versus": self.versus,
            "target": self.target,
            "met": self.met,
            "note": self.note,
            **self.extra,
        }


def ratio(a: float | None, b: float | None) -> float | None:
    if a is None or b is None or not b or math.isnan(a) or math.isnan(b):
        return None
    return a / b


def unavailable(scenario: str, why: str) -> Row:
    return Row(scenario, None, note=f"unavailable: {why}")


# -- onnxruntime in-process ------------------------------------------------------


def session(path: Path, threads: int) -> Any:
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.intra_op_num_threads = threads
    options.inter_op_num_threads = 1
    return ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])


def ort_iris(seconds: float) -> Row:
    sess = session(IRIS, 1)
    feeds = {IRIS_INPUT: np.array([IRIS_ROW], dtype=np.float32)}
    outputs = ["output_label"]
    sess.run(outputs, feeds)
    measured = load.sync_loop(lambda: sess.run(outputs, feeds), seconds=seconds, generator="loop")
    return Row(
        "onnxruntime in-process, iris, 1 row",
        measured,
        "calls/s",
        ratio(measured.rps, REFERENCES["ort_iris"]),
        "issue 118k",
    )


def ort_squeezenet(model: Path, seconds: float, rows: int, threads: int, parallel: int = 1) -> Row:
    """In-process squeezenet; `parallel` threads each with their own session (GIL released)."""
    sessions = [session(model, threads) for _ in range(parallel)]
    feeds = {SQUEEZENET_INPUT: squeezenet_batch(rows)}
    for s in sessions:
        s.run(None, feeds)
    results: list[Measured] = []

    def worker(s: Any) -> None:
        results.append(
            load.sync_loop(
                lambda: s.run(None, feeds), seconds=seconds, generator="loop", items=rows
            )
        )

    threads_ = [threading.Thread(target=worker, args=(s,)) for s in sessions]
    for t in threads_:
        t.start()
    for t in threads_:
        t.join()
    total = sum(m.rps for m in results)
    first = results[0]
    measured = Measured(
        requests=sum(m.requests for m in results),
        failures=0,
        seconds=first.seconds,
        rps=total,
        p50_ms=first.p50_ms,
        p99_ms=first.p99_ms,
        generator=f"{parallel} thread(s)",
    )
    reference = "ort_squeezenet_b8" if rows > 1 else "ort_squeezenet_b1"
    label = f"onnxruntime in-process, squeezenet, batch {rows}, {threads} thread(s)"
    if parallel > 1:
        label += f", {parallel} sessions in parallel"
    return Row(
        label,
        measured,
        "img/s",
        ratio(total, REFERENCES[reference]),
        f"issue {REFERENCES[reference]:.0f}",
    )


# -- NATS ----------------------------------------------------------------------


async def nats_loop(
    url: str,
    subject: str,
    payload: bytes,
    check: Callable[[bytes], bool],
    *,
    in_flight: int,
    seconds: float,
) -> Measured:
    import nats

    nc = await nats.connect(url)
    try:

        async def call() -> bool:
            msg = await nc.request(subject, payload, timeout=10)
            return check(msg.data)

        await call()
        return await load.async_loop(
            call,
            concurrency=in_flight,
            seconds=seconds,
            generator=f"nats-py, {in_flight} in flight",
        )
    finally:
        await nc.close()


def is_answer(data: bytes) -> bool:
    """An InferResponse and not an error reply."""
    decoded = msgpack.unpackb(data, raw=False)
    return isinstance(decoded, dict) and "error" not in decoded


async def nats_echo(url: str, seconds: float) -> Row:
    echo = python_child("nats-echo", "bench.peers.nats_echo", url, "bench.echo")
    try:
        echo.wait_for("echo ready")
        payload = pack(InferRequest(model="iris", inputs=iris_tensors()))
        measured = await nats_loop(
            url,
            "bench.echo",
            payload,
            lambda d: d == payload,
            in_flight=NATS_IN_FLIGHT,
            seconds=seconds,
        )
    finally:
        echo.stop()
    return Row(
        f"raw NATS echo (Python responder), {NATS_IN_FLIGHT} in flight",
        measured,
        ratio=ratio(measured.rps, REFERENCES["nats_echo"]),
        versus="issue 24-29k",
    )


def iris_tensors() -> tuple[Tensor, ...]:
    data = np.array([IRIS_ROW], dtype=np.float32).tobytes()
    return (Tensor(IRIS_INPUT, "FP32", (1, 4), data),)


async def nats_iris(url: str, seconds: float, echo: Row) -> Row:
    payload = pack(InferRequest(model="iris", inputs=iris_tensors(), outputs=("output_label",)))
    measured = await nats_loop(
        url, subjects.infer("iris"), payload, is_answer, in_flight=NATS_IN_FLIGHT, seconds=seconds
    )
    return Row(
        f"raw nats-py request loop on iris, {NATS_IN_FLIGHT} in flight",
        measured,
        ratio=ratio(measured.rps, echo.measured.rps if echo.measured else None),
        versus="echo (this run)",
        target=0.6,
    )


async def client_iris(url: str, seconds: float, echo: Row) -> Row:
    """The project's Python NATS client (mlbuffet.client), once it is in the tree.

    HOOK: this is where the client's own scenario lives; it needs only
    `Client.connect(url)` and `await client.infer(model, {input: array})`.
    """
    scenario = f"mlbuffet.client on iris, {NATS_IN_FLIGHT} in flight"
    try:
        from mlbuffet.client import Client  # type: ignore[import-not-found,unused-ignore]
    except ImportError:
        return unavailable(scenario, "mlbuffet.client is not in this tree yet")
    client = await Client.connect(url)
    row = np.array([IRIS_ROW], dtype=np.float32)
    try:

        async def call() -> bool:
            await client.infer("iris", {IRIS_INPUT: row}, outputs=["output_label"])
            return True

        await call()
        measured = await load.async_loop(
            call, concurrency=NATS_IN_FLIGHT, seconds=seconds, generator="mlbuffet.client"
        )
    finally:
        await client.close()
    return Row(
        scenario,
        measured,
        ratio=ratio(measured.rps, echo.measured.rps if echo.measured else None),
        versus="echo (this run)",
        target=0.6,
    )


# -- HTTP ----------------------------------------------------------------------


async def probe_status(url: str, body: bytes, headers: dict[str, str]) -> int:
    async with (
        aiohttp.ClientSession() as http,
        http.post(url, data=body, headers=headers) as response,
    ):
        await response.read()
        return response.status


def aiohttp_inline() -> tuple[Child, str]:
    port = free_port()
    child = python_child("aiohttp-inline", "bench.peers.aiohttp_inline", str(IRIS), str(port))
    child.wait_for("listening")
    return child, f"http://127.0.0.1:{port}"


def mlserver(python: str, folder: Path, parallel_workers: int | None = None) -> tuple[Child, str]:
    """Start MLServer from its own virtualenv with bench/peers/mlserver's ONNX runtime.

    `parallel_workers` None keeps MLServer's default (1 inference process)."""
    model_dir = folder / "iris"
    model_dir.mkdir(parents=True, exist_ok=True)
    http_port, grpc_port, metrics_port = free_port(), free_port(), free_port()
    settings: dict[str, Any] = {
        "host": "127.0.0.1",
        "http_port": http_port,
        "grpc_port": grpc_port,
        "metrics_port": metrics_port,
    }
    if parallel_workers is not None:
        settings["parallel_workers"] = parallel_workers
    (folder / "settings.json").write_text(json.dumps(settings))
    (model_dir / "model-settings.json").write_text(
        json.dumps(
            {
                "name": "iris",
                "implementation": "onnx_runtime.OnnxRuntime",
                "parameters": {"uri": str(IRIS)},
            }
        )
    )
    env = {"PYTHONPATH": str(ROOT / "bench" / "peers" / "mlserver")}
    child = Child(
        "mlserver", [python, "-m", "mlserver.cli.main", "start", str(folder)], env=env, cwd=folder
    )
    url = f"http://127.0.0.1:{http_port}"
    try:
        wait_http(f"{url}/v2/models/iris/ready", expect=200, timeout_s=60, child=child)
    except RuntimeError:
        tail = "\n".join(child.lines[-15:])
        child.stop()
        raise RuntimeError(f"MLServer did not become ready:\n{tail}") from None
    return child, url


# -- CNN -------------------------------------------------------------------------


def cnn_payload(rows: int = 1) -> bytes:
    batch = squeezenet_batch(rows)
    tensor = Tensor(SQUEEZENET_INPUT, "FP32", tuple(batch.shape), batch.tobytes())
    return pack(InferRequest(model="squeezenet", inputs=(tensor,)))


async def cnn_row(url: str, seconds: float, scenario: str) -> Row:
    measured = await nats_loop(
        url,
        subjects.infer("squeezenet"),
        cnn_payload(),
        is_answer,
        in_flight=CNN_CLIENTS,
        seconds=seconds,
    )
    return Row(scenario, measured, "img/s")


# -- start-up ------------------------------------------------------------------


async def up_to_first_prediction() -> Row:
    from bench.rest_iris import start_up

    with tempfile.TemporaryDirectory(prefix="mlbuffet-bench-up-") as folder:
        process, _, first = await start_up(Path(folder), 2)
        process.terminate()
        await asyncio.to_thread(process.wait, 30)
    return Row(
        "`mlbuffet up` (2 modelhosts) to first prediction",
        Measured(1, 0, first, 1 / first, first * 1000, first * 1000, "one start"),
        "s",
        first,
        "seconds",
        target=3.0,
    )


async def guarded(scenario: str, make: Awaitable[Row]) -> Row:
    """Run one scenario; a failure becomes an `unavailable` row, never the end of the run."""
    try:
        return await make
    except Exception as exc:
        print(f"bench: {scenario}: {type(exc).__name__}: {exc}", file=sys.stderr)
        return unavailable(
            scenario, f"{type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}"
        )


def cores() -> int:
    return os.cpu_count() or 1
