"""Hostile payloads on every NATS subject the actors serve: an error reply each time, no dead actor.

A real nats-server, a real modelhost (onnxruntime), metrics actor and
trainer actor, all in this process. The list of subjects comes from the code:
`test_every_subject_function_is_classified` fails when subjects.py grows a
subject this file does not place, and `test_every_live_subscription_is_fuzzed`
fails when an actor subscribes to something the fuzz targets do not cover.
"""

from __future__ import annotations

import asyncio
import inspect
import json
import os
import time
from collections.abc import AsyncIterator, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import msgpack
import numpy as np
import pytest
from nats.aio.client import Client
from nats.micro.service import ServiceVerb, control_subject
from prometheus_client import generate_latest

from actors.metrics.config import MetricsConfig
from actors.metrics.service import MetricsService
from actors.modelhost.service import ModelhostService
from actors.trainer.__main__ import make_backend
from actors.trainer.config import TrainerConfig
from actors.trainer.service import TrainerService
from mlbuffet.config import NatsConfig
from mlbuffet.mesh.connection import close_quietly, connect
from mlbuffet.protocol import subjects
from mlbuffet.protocol.cluster import ClusterSeries, ClusterStatus, Heartbeat
from mlbuffet.protocol.inference import EchoReply, EchoRequest, InferRequest, InferResponse, Tensor
from mlbuffet.protocol.jobs import TrainJob
from mlbuffet.protocol.wire import pack, unpack
from mlbuffet.roles.node_ids import new_node_id
from tests.hostile import fuzz_cases
from tests.onnx_models import ModelFiles

MODEL = "adder"
REPLY_TIMEOUT_S = 10.0
"""Generous on a loaded 2-core machine; a hang shows as a timeout, which fails the test."""
CONCURRENCY = 16

# -- which subject is what: every function of subjects.py is placed here ------

SERVED = {
    "infer": "modelhost",
    "infer_pinned_versions": "modelhost",
    "echo": "modelhost",
    "train_submit": "trainer",
    "node_heartbeat_now": "every actor (micro endpoint)",
    "cluster_status": "metrics (micro endpoint)",
    "cluster_series": "metrics (micro endpoint)",
    "place": "modelhost",
    "place_any": "modelhost (the wildcard a host without --models listens on)",
}
"""Request/reply subjects an actor answers: each one is fuzzed below."""

CONSUMED = {"heartbeat": "metrics", "all_heartbeats": "metrics"}
"""Fire-and-forget subjects an actor reads: fuzzed by publishing, then the actor must still serve."""

PUBLISHED_ONLY = {
    "model_events": "read by the gateway's event stream and `mlbuffet events`, no actor",
    "train_events": "read by clients following a job, no actor",
    "node_events": "read by clients, no actor",
    "all_events": "read by the gateway's event stream and `mlbuffet events`, no actor",
    "role_heartbeats": "read by the gateway for its modelhosts' node ids (/v2 stats), no actor",
    "service_ping": "nats.micro answers it inside every actor, none of our code",
}
NOT_SUBJECTS = {
    "service_name",
    "file_object",
    "train_input",
    "train_log",
    "parse_infer",
    "heartbeat_node",
    "kept_events",
    "parse_place",
}


def test_every_subject_function_is_classified() -> None:
    """A new subject in subjects.py must be placed (and so fuzzed) here before the suite passes."""
    functions = {
        name
        for name, value in inspect.getmembers(subjects, inspect.isfunction)
        if value.__module__ == subjects.__name__ and not name.startswith("_")
    }
    placed = SERVED.keys() | CONSUMED.keys() | PUBLISHED_ONLY.keys() | NOT_SUBJECTS
    assert functions - placed == set(), "subjects.py has subjects the fuzz test does not place"
    assert placed - functions == set(), "the fuzz test places subjects that no longer exist"


# -- the mesh under attack --------------------------------------------------------


@dataclass
class FuzzTargets:
    nc: Client
    modelhost: ModelhostService
    metrics: MetricsService
    trainer: TrainerService
    clients: list[Client] = field(default_factory=list)

    @property
    def actors(self) -> tuple[ModelhostService, MetricsService, TrainerService]:
        return (self.modelhost, self.metrics, self.trainer)


@pytest.fixture
async def mesh(
    nats_config: NatsConfig,
    nc: Client,
    upload: Any,
    start_modelhost: Any,
    model_files: ModelFiles,
    tmp_path: Path,
) -> AsyncIterator[FuzzTargets]:
    await upload(MODEL, model_files.add_one)
    clients = [await connect(nats_config, name="fuzz-metrics")]
    metrics = MetricsService(
        clients[0],
        MetricsConfig(nats=nats_config, metrics_port=0, heartbeat_interval_s=0.5),
        new_node_id("metrics"),
    )
    await metrics.start()  # first, so it hears the others' first heartbeats
    modelhost = await start_modelhost()
    clients.append(await connect(nats_config, name="fuzz-trainer"))
    config = TrainerConfig(nats=nats_config, work_dir=tmp_path, cache_dir=tmp_path / "venvs")
    trainer = TrainerService(clients[1], config, "trainer-fuzz", make_backend(config, os.environ))
    await trainer.start()
    yield FuzzTargets(nc, modelhost, metrics, trainer, clients)
    for actor in (metrics, trainer):
        await actor.drain(5)
    for client in clients:
        await close_quietly(client)


GOOD_INPUT = Tensor("x", "FP32", (1, 4), np.arange(4, dtype="<f4").tobytes())


def good_infer_request() -> bytes:
    return pack(InferRequest(model=MODEL, inputs=(GOOD_INPUT,), id="good"))


# -- targets: a subject, the payloads it gets, what a right answer is ------------------

PARSES = "parses"
"""Reads the payload: hostile input must get an MLBuffet error map with a 4xx status."""
ECHOES = "echoes"
"""The echo test: any msgpack map is a valid request (its data comes back); the rest is a 4xx."""
OPTIONAL = "optional"
"""Reads the payload, and every field is optional (an empty payload or map asks for the
default): hostile input gets the normal answer or a 4xx error map, never a 5xx."""
NO_INPUT = "no input"
"""Takes no payload (micro control and status endpoints): the normal answer, whatever was sent."""


@dataclass(frozen=True)
class Target:
    subject: str
    kind: str
    covers: str
    """The subscription this exercises (a live subscription subject, maybe a wildcard)."""


def targets(mesh: FuzzTargets) -> list[Target]:
    out = [
        Target(subjects.infer(MODEL), PARSES, subjects.infer(MODEL)),
        Target(subjects.infer(MODEL, 1), PARSES, subjects.infer_pinned_versions(MODEL)),
        Target(f"{subjects.infer(MODEL)}.0", PARSES, subjects.infer_pinned_versions(MODEL)),
        Target(f"{subjects.infer(MODEL)}.abc", PARSES, subjects.infer_pinned_versions(MODEL)),
        Target(
            f"{subjects.infer(MODEL)}.99999999999", PARSES, subjects.infer_pinned_versions(MODEL)
        ),
        Target(subjects.echo(), ECHOES, subjects.echo()),
        Target(subjects.train_submit(), PARSES, subjects.train_submit()),
        Target(subjects.cluster_status(), NO_INPUT, subjects.cluster_status()),
        Target(subjects.cluster_series(), OPTIONAL, subjects.cluster_series()),
        # The model is named by the subject; the payload is ignored: a host holding it says so.
        Target(subjects.place(MODEL), NO_INPUT, subjects.place_any()),
    ]
    for actor in mesh.actors:
        beat = subjects.node_heartbeat_now(actor.node_id)
        out.append(Target(beat, NO_INPUT, beat))
        service = actor.presence.service
        assert service is not None
        for verb in ServiceVerb:
            for name, node in ((None, None), (service._name, None), (service._name, service._id)):
                subject = control_subject(verb, name=name, id=node)
                if not any(t.subject == subject for t in out):
                    out.append(Target(subject, NO_INPUT, subject))
    return out


def live_subscriptions(mesh: FuzzTargets) -> set[str]:
    """Every subject an actor of the mesh listens on, read from the actors themselves."""
    found: set[str] = set()
    for actor in mesh.actors:
        found.update(sub.subject for sub in actor._subscriptions)
        service = actor.presence.service
        assert service is not None
        found.update(endpoint._subject for endpoint in service._endpoints)
        found.update(sub.subject for sub in service._subscriptions.values())
    return found


async def test_every_live_subscription_is_fuzzed(mesh: FuzzTargets) -> None:
    covered = {t.covers for t in targets(mesh)} | {subjects.all_heartbeats()}
    missing = live_subscriptions(mesh) - covered
    assert missing == set(), f"actors serve subjects the fuzz targets miss: {sorted(missing)}"


# -- sending and judging -------------------------------------------------------------


@dataclass
class Tally:
    sent: int = 0
    failures: list[str] = field(default_factory=list)
    slowest_s: float = 0.0


def judge(target: Target, label: str, reply: bytes) -> str | None:
    """None if `reply` is right for hostile input on `target`, else what is wrong."""
    if target.subject.startswith("$SRV."):
        try:
            json.loads(reply)
        except ValueError:
            return f"not JSON: {reply[:80]!r}"
        return None
    try:
        raw = msgpack.unpackb(reply, raw=False, strict_map_key=False)
    except Exception as exc:
        return f"reply is not msgpack ({exc})"
    if not isinstance(raw, dict):
        return f"reply is not a map: {raw!r:.80}"
    error = raw.get("error")
    if target.kind == NO_INPUT:
        return None if error is None else f"no-input endpoint answered an error: {error}"
    if label.startswith("valid:") and error is None and raw.get("type") == InferResponse.TYPE:
        return None
    if target.kind == OPTIONAL and error is None:
        return None if raw.get("type") == ClusterSeries.TYPE else f"not a series: {raw!r:.120}"
    if target.kind == ECHOES and error is None:
        return None if raw.get("type") == EchoReply.TYPE else f"not an echo reply: {raw!r:.120}"
    if not isinstance(error, dict):
        return f"no error map: {raw!r:.120}"
    code, message = error.get("code"), error.get("message")
    if not isinstance(code, int) or not 400 <= code < 500:
        return f"status {code}, not a 4xx: {message!r:.200}"
    if not isinstance(message, str) or not message.strip():
        return "error without a message"
    if len(message) > 4096:
        return f"error message of {len(message)} characters"
    return None


async def send_all(nc: Client, jobs: Iterable[tuple[Target, str, bytes]], tally: Tally) -> None:
    room = asyncio.Semaphore(CONCURRENCY)

    async def one(target: Target, label: str, payload: bytes) -> None:
        async with room:
            tally.sent += 1
            started = time.perf_counter()
            try:
                msg = await nc.request(target.subject, payload, timeout=REPLY_TIMEOUT_S)
            except Exception as exc:
                tally.failures.append(f"{target.subject} <- {label}: no reply ({exc!r})")
                return
            tally.slowest_s = max(tally.slowest_s, time.perf_counter() - started)
            wrong = judge(target, label, msg.data)
            if wrong is not None:
                tally.failures.append(f"{target.subject} <- {label}: {wrong}")

    await asyncio.gather(*(one(*job) for job in jobs))


def corpus(kind: str, random: list[bytes], max_payload: int) -> list[fuzz_cases.Case]:
    """The hostile payloads a target of `kind` gets."""
    cases = [*fuzz_cases.msgpack_bombs(), *fuzz_cases.wrong_types()]
    if kind == NO_INPUT:
        return [*cases, *(("random", b) for b in random[:8])]
    cases += [(f"random {i}", b) for i, b in enumerate(random)]
    cases += fuzz_cases.prefixes(good_infer_request())
    cases += fuzz_cases.prefixes(pack(TrainJob("job-1", MODEL, "t.py", "r.txt", ("d.csv",))))
    cases += fuzz_cases.infer_cases(MODEL, GOOD_INPUT.to_dict())
    cases += fuzz_cases.job_cases()
    if kind == ECHOES:
        # The reply adds the node id: a request just under the limit makes a reply over it.
        near_limit = pack(EchoRequest(data=b"\x00" * (max_payload - 64)))
        cases += [("echo of just under the payload limit", near_limit)]
    return cases


async def assert_serving(mesh: FuzzTargets) -> None:
    """Every actor still answers a good request correctly."""
    reply = await mesh.nc.request(subjects.infer(MODEL), good_infer_request(), timeout=10)
    answer = unpack(reply.data, InferResponse.from_dict)
    assert isinstance(answer.outputs[0], Tensor)
    got = np.frombuffer(answer.outputs[0].data, dtype="<f4")
    assert got.tolist() == [1.0, 2.0, 3.0, 4.0]
    echo = await mesh.nc.request(subjects.echo(), pack(EchoRequest(data=[1, "two"])), timeout=10)
    assert unpack(echo.data, EchoReply.from_dict).data == [1, "two"]
    status = await mesh.nc.request(subjects.cluster_status(), b"", timeout=10)
    nodes = {n["node"] for n in unpack(status.data, ClusterStatus.from_dict).nodes}
    assert {mesh.modelhost.node_id, mesh.trainer.node_id} <= nodes
    assert b"mlbuffet" in generate_latest(mesh.metrics.registry)
    for actor in mesh.actors:
        beat = await mesh.nc.request(subjects.node_heartbeat_now(actor.node_id), b"", timeout=10)
        assert unpack(beat.data, Heartbeat.from_dict).node == actor.node_id
    submit = await mesh.nc.request(
        subjects.train_submit(),
        pack(TrainJob("job-ok", MODEL, "t.py", "r.txt", ("d.csv",))),
        timeout=10,
    )
    error = msgpack.unpackb(submit.data)["error"]
    assert error["code"] == 422 and "upload it before submitting" in error["message"]


async def test_hostile_payloads_get_4xx_and_actors_keep_serving(mesh: FuzzTargets) -> None:
    await assert_serving(mesh)
    random = fuzz_cases.random_bytes(50)
    tally = Tally()
    started = time.perf_counter()
    for target in targets(mesh):
        await send_all(
            mesh.nc,
            ((target, label, p) for label, p in corpus(target.kind, random, mesh.nc.max_payload)),
            tally,
        )
    await assert_serving(mesh)
    print(
        f"\nfuzzed {len(targets(mesh))} subjects with {tally.sent} hostile requests in "
        f"{time.perf_counter() - started:.1f}s; slowest reply {tally.slowest_s * 1000:.0f} ms"
    )
    assert tally.failures == [], "\n".join(tally.failures[:40])


def hostile_heartbeats(random: list[bytes]) -> list[fuzz_cases.Case]:
    """Heartbeat-shaped messages whose content would poison a naive cluster view."""
    base = Heartbeat(
        node="evil-1",
        role="modelhost",
        host="h",
        pid=1,
        version="0",
        started_at=0.0,
        at=time.time(),
        interval_s=1.0,
        cpu_percent=0.0,
        rss_bytes=0,
        in_flight=0,
    ).to_dict()

    def beat(**changes: Any) -> bytes:
        return fuzz_cases.packed({**base, **changes})

    bad_stats = {"success": "lots", "failure": None, "latency": {"bounds": "x", "counts": [1]}}
    return [
        *fuzz_cases.msgpack_bombs(),
        *fuzz_cases.wrong_types(),
        *((f"random {i}", b) for i, b in enumerate(random)),
        ("counters.models of strings", beat(counters={"models": {"m:1": bad_stats}})),
        ("counters.models a list", beat(counters={"models": [1, 2]})),
        ("success a huge float", beat(counters={"models": {"m:1": {"success": 1e308}}})),
        ("success nan", beat(counters={"models": {"m:1": {"success": float("nan")}}})),
        ("success inf", beat(counters={"models": {"m:1": {"success": float("inf")}}})),
        ("latency histogram lies", beat(counters={"models": {"m:1": {"latency": {
            "bounds": [1.0], "counts": [1, 2, 3], "sum": "x", "count": -5}}}})),
        ("gateway rows of strings", beat(role="gateway", counters={
            "http_requests": [{"count": "many"}]})),
        ("interval nan", beat(node="evil-2", interval_s=float("nan"))),
        ("interval negative", beat(node="evil-3", interval_s=-1.0)),
        ("at nan", beat(node="evil-4", at=float("nan"))),
        ("at inf", beat(node="evil-5", at=float("inf"))),
        ("models of strings", beat(models=["m:1"])),
        ("huge node name", beat(node="n" * 500_000)),
        ("latency a string", beat(latency="fast")),
        ("10000 models", beat(models=[{"model": f"m{i}", "version": 1} for i in range(10_000)])),
    ]  # fmt: skip


async def test_hostile_heartbeats_do_not_poison_the_metrics_actor(mesh: FuzzTargets) -> None:
    """Heartbeats are fire-and-forget: whatever arrives, cluster status and /metrics keep working."""
    random = fuzz_cases.random_bytes(50)
    cases = hostile_heartbeats(random)
    for i, (_, payload) in enumerate(cases):
        await mesh.nc.publish(subjects.heartbeat("modelhost", f"evil-{i % 7}"), payload)
    await mesh.nc.flush()
    await asyncio.sleep(1.5)  # past a few sweeps of the metrics actor
    await assert_serving(mesh)
    status = await mesh.nc.request(subjects.cluster_status(), b"", timeout=10)
    view = unpack(status.data, ClusterStatus.from_dict)
    print(f"\npublished {len(cases)} hostile heartbeats; cluster view has {len(view.nodes)} nodes")
    for row in view.nodes:
        assert isinstance(row["requests"], int) and isinstance(row["requests_per_s"], float)
