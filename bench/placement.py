"""Many models on a small pool: memory budgets, loading on first request, a host killed.

    python -m bench.placement                       # 300 models of 4 MiB, 2 hosts of 256 MiB, 3 sweeps
    python -m bench.placement --models 60 --budget 64MiB --sweeps 2 --kill

Starts an embedded nats-server and `--hosts` modelhost processes with
`--memory-budget`, uploads `--models` lookup tables (tests.onnx_models;
row r of table k answers r + k), then sweeps every model in a random order
`--sweeps` times through mlbuffet.Client with `--callers` concurrent callers.
Every answer is compared with onnxruntime run in this process on the same
file. A sampler reads each host's resident memory (/proc/<pid>/statm) every
0.1 s and compares it with the host's budget plus its own baseline (its RSS
once ready, before any model). A request is cold when no host held its
model when it was sent (followed from the hosts' loaded/evicted events).
With `--kill`, the second host is SIGKILLed a third of the way into the
second sweep. Prints one JSON document; bounded: every request has a 30 s
deadline and the run stops after the sweeps.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import signal
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

import numpy as np
import onnxruntime as ort

from bench.processes import Child, python_child
from mlbuffet.client import Client
from mlbuffet.natsd.server import NatsServer, NatsServerConfig
from mlbuffet.protocol import subjects
from mlbuffet.protocol.events import ModelEvent, ModelEventKind
from mlbuffet.protocol.sizes import parse_size
from mlbuffet.protocol.wire import unpack
from mlbuffet.roles.runner import run
from tests.onnx_models import lookup_table

SAMPLE_EVERY_S = 0.1
PAGE = os.sysconf("SC_PAGE_SIZE")


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m bench.placement")
    parser.add_argument("--models", type=int, default=300)
    parser.add_argument("--mib", type=float, default=4.0, help="weights per model")
    parser.add_argument("--hosts", type=int, default=2)
    parser.add_argument("--budget", default="256MiB", help="each host's --memory-budget")
    parser.add_argument("--sweeps", type=int, default=3)
    parser.add_argument("--callers", type=int, default=4)
    parser.add_argument("--kill", action="store_true", help="SIGKILL a host in the 2nd sweep")
    parser.add_argument("--seed", type=int, default=16)
    return parser.parse_args(argv)


def rss(pid: int) -> int | None:
    try:
        return int(Path(f"/proc/{pid}/statm").read_text().split()[1]) * PAGE
    except OSError:
        return None


class Sampler:
    """Each host's RSS above its baseline, every SAMPLE_EVERY_S, in a thread."""

    def __init__(self, hosts: dict[int, int]) -> None:
        self.baselines = hosts
        self.worst = dict.fromkeys(hosts, 0)
        self.samples = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while not self._stop.wait(SAMPLE_EVERY_S):
            for pid, baseline in self.baselines.items():
                now = rss(pid)
                if now is not None:
                    self.worst[pid] = max(self.worst[pid], now - baseline)
            self.samples += 1

    def __enter__(self) -> Sampler:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()


def expected_answers(paths: list[Path]) -> list[float]:
    """Row 0 of each table, by onnxruntime in this process (one session at a time)."""
    answers = []
    for path in paths:
        session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
        (y,) = session.run(None, {"i": np.array([0], np.int64)})
        answers.append(float(y[0][0]))
    return answers


def percentile(values: list[float], q: float) -> float | None:
    if not values:
        return None
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


async def bench(args: argparse.Namespace, folder: Path) -> dict[str, Any]:
    budget = parse_size(args.budget)
    server = NatsServer(NatsServerConfig(data_dir=folder / "nats", port=0))
    await server.start()
    assert server.url is not None
    hosts: list[Child] = []
    try:
        for i in range(args.hosts):
            host = python_child(
                f"modelhost-{i}",
                "actors.modelhost",
                *("--nats", server.url, "--log-level", "info"),
                *("--memory-budget", str(budget), "--node-id", f"bench-host-{i}"),
            )
            hosts.append(host)
            await asyncio.to_thread(host.wait_for, "ready, serving")
        baselines = {h.process.pid: rss(h.process.pid) or 0 for h in hosts}
        client = await Client.connect(server.url, timeout=30.0)
        held: dict[str, set[str]] = {}

        async def follow(msg: Any) -> None:
            event = unpack(msg.data, ModelEvent.from_dict)
            nodes = held.setdefault(event.model, set())
            if event.event is ModelEventKind.LOADED:
                nodes.add(event.node)
            elif event.event in (ModelEventKind.EVICTED, ModelEventKind.UNLOADED):
                nodes.discard(event.node)

        await client.nc.subscribe(subjects.model_events("*"), cb=follow)
        paths = [
            lookup_table(folder / f"m{k}.onnx", args.mib, float(k)) for k in range(args.models)
        ]
        started = time.perf_counter()
        for k, path in enumerate(paths):
            await client.upload(f"m{k}", path)
        upload_s = time.perf_counter() - started
        expected = await asyncio.to_thread(expected_answers, paths)

        rng = random.Random(args.seed)
        wrong: list[str] = []
        failed: list[str] = []
        cold: list[float] = []
        warm: list[float] = []
        sweep_s: list[float] = []
        killed_at: float | None = None
        after_kill: list[float] = []
        with Sampler(baselines) as sampler:
            for sweep in range(args.sweeps):
                order = list(range(args.models))
                rng.shuffle(order)
                queue: asyncio.Queue[int] = asyncio.Queue()
                for k in order:
                    queue.put_nowait(k)
                kill_after = len(order) // 3 if args.kill and sweep == 1 else None
                done = 0

                async def caller(queue: asyncio.Queue[int], kill_after: int | None) -> None:
                    nonlocal done, killed_at
                    while not queue.empty():
                        k = queue.get_nowait()
                        if kill_after is not None and done == kill_after and killed_at is None:
                            killed_at = time.perf_counter()
                            os.kill(hosts[-1].process.pid, signal.SIGKILL)
                        was_cold = not held.get(f"m{k}")
                        sent = time.perf_counter()
                        try:
                            result = await client.infer(f"m{k}", {"i": np.array([0], np.int64)})
                        except Exception as exc:  # every failure is counted, none hidden
                            failed.append(
                                f"m{k}: {type(exc).__name__} after "
                                f"{time.perf_counter() - sent:.1f} s: {exc}"
                            )
                            continue
                        finally:
                            done += 1
                        took = time.perf_counter() - sent
                        (cold if was_cold else warm).append(took)
                        if killed_at is not None and sent >= killed_at:
                            after_kill.append(took)
                        if float(result["y"][0][0]) != expected[k]:
                            wrong.append(f"m{k}")

                sweep_started = time.perf_counter()
                await asyncio.gather(*(caller(queue, kill_after) for _ in range(args.callers)))
                sweep_s.append(time.perf_counter() - sweep_started)
        await client.close()
        requests = args.models * args.sweeps
        return {
            "models": args.models,
            "mib_per_model": args.mib,
            "hosts": args.hosts,
            "budget_bytes": budget,
            "sweeps": args.sweeps,
            "callers": args.callers,
            "upload_s": round(upload_s, 1),
            "requests": requests,
            "failed": len(failed),
            "failures": failed[:10],
            "wrong_answers": len(wrong),
            "sweep_req_per_s": [round(args.models / s, 1) for s in sweep_s],
            "cold_requests": len(cold),
            "cold_latency_p50_s": percentile(cold, 0.5),
            "cold_latency_p99_s": percentile(cold, 0.99),
            "warm_latency_p50_s": percentile(warm, 0.5),
            "rss_samples": sampler.samples,
            "rss_baseline_bytes": list(baselines.values()),
            "rss_above_baseline_max_bytes": list(sampler.worst.values()),
            "rss_within_budget": all(w <= budget for w in sampler.worst.values()),
            "killed": killed_at is not None,
            "after_kill_latency_max_s": max(after_kill) if after_kill else None,
            "host_log_tails": {h.name: h.lines[-15:] for h in hosts} if failed else {},
        }
    finally:
        for host in hosts:
            await asyncio.to_thread(host.stop)
        await server.stop()


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="mlbuffet-placement-") as folder:
        result = run(bench(args, Path(folder)))
    print(json.dumps(result, indent=2))
    return 0 if result["failed"] == 0 and result["wrong_answers"] == 0 else 1


if __name__ == "__main__":
    raise SystemExit(main())
