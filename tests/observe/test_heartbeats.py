"""Every role publishes heartbeats with the fields docs/protocol.md documents, and answers $SRV."""

from __future__ import annotations

import itertools
import json
import os
import re
import socket
from pathlib import Path

import nats.errors
from nats.aio.msg import Msg

from gateway.service import NODE_ID
from mlbuffet.mesh.connection import flush_subscriptions
from mlbuffet.protocol import subjects
from mlbuffet.protocol.cluster import Heartbeat
from mlbuffet.protocol.wire import unpack, unpack_map
from tests.actors.conftest import adder_input, infer
from tests.conftest import eventually
from tests.observe.conftest import INTERVAL_S, Recorder, heartbeats

PROTOCOL_DOC = Path(__file__).resolve().parents[2] / "docs" / "protocol.md"


def documented_fields(section: str) -> set[str]:
    """Field names of the table under `### <section>` in docs/protocol.md."""
    text = PROTOCOL_DOC.read_text()
    start = text.index(f"### {section}")
    body = text[start:].split("\n### ", 1)[0].split("\n## ", 1)[0]
    return set(re.findall(r"^\| `([a-z_]+)` \|", body, re.MULTILINE))


async def raw_heartbeats(nc) -> Recorder:
    recorder = Recorder()

    async def on_message(msg: Msg) -> None:
        recorder.note((msg.subject, unpack_map(msg.data)))

    await nc.subscribe(subjects.all_heartbeats(), cb=on_message)
    await flush_subscriptions(nc)
    return recorder


async def test_every_role_sends_the_documented_heartbeat(
    nc, upload, model_files, start_modelhost, make_gateway, start_metrics
):
    fields = documented_fields("Heartbeat")
    assert {"node", "role", "host", "pid", "cpu_percent", "rss_bytes", "models"} <= fields
    beats = await raw_heartbeats(nc)
    await upload("adder", model_files.add_one)
    host = await start_modelhost(heartbeat_interval_s=INTERVAL_S)
    gateway = await make_gateway(heartbeat_interval_s=INTERVAL_S)
    metrics = await start_metrics()
    await infer(nc, "adder", adder_input())

    for role in ("modelhost", "gateway", "metrics"):
        subject, raw = await beats.wait_for(lambda m, role=role: m[1]["role"] == role)
        assert set(raw) == fields, f"{role}: {set(raw) ^ fields}"
        beat = Heartbeat.from_dict(raw)
        assert subject == subjects.heartbeat(role, beat.node)
        assert beat.host == socket.gethostname()
        assert beat.pid == os.getpid()  # all three run in this test process
        assert beat.interval_s == INTERVAL_S
        assert beat.rss_bytes > 10 * 1024 * 1024
        assert 0 <= beat.cpu_percent
        assert beat.started_at <= beat.at
    assert {b[1]["node"] for b in beats.messages} >= {
        host.node_id,
        gateway.server.app[NODE_ID],
        metrics.node_id,
    }

    # The modelhost's heartbeat carries what it loaded and what it served.
    def served_one(message) -> bool:
        _, raw = message
        return (
            raw["node"] == host.node_id
            and raw["counters"]["models"].get("adder:1", {}).get("success") == 1
        )

    _, raw = await beats.wait_for(served_one)
    assert raw["models"] == [{"model": "adder", "version": 1}]
    assert raw["latency"]["count"] == 1 and raw["latency"]["p50_s"] > 0
    histogram = raw["counters"]["models"]["adder:1"]["latency"]
    assert histogram["count"] == 1 and len(histogram["counts"]) == len(histogram["bounds"]) + 1


async def test_the_gateway_heartbeat_counts_http_requests_by_route(nc, make_gateway):
    beats = await heartbeats(nc, subjects.heartbeat("gateway", "*"))
    gateway = await make_gateway(heartbeat_interval_s=INTERVAL_S)
    for _ in range(3):
        assert (await gateway.get("/api/test")).status == 200
    assert (await gateway.get("/no/such/page")).status == 404

    def counted(beat: Heartbeat) -> bool:
        rows = {(r["route"], r["status"]): r["count"] for r in beat.counters["http_requests"]}
        return rows.get(("/api/test", "200")) == 3 and rows.get(("unmatched", "404")) == 1

    await beats.wait_for(counted)


async def test_heartbeats_keep_their_interval(nc, start_metrics):
    beats = await heartbeats(nc)
    metrics = await start_metrics(heartbeat_interval_s=0.1)
    await eventually(lambda: len([b for b in beats.messages if b.node == metrics.node_id]) >= 6)
    times = [b.at for b in beats.messages if b.node == metrics.node_id]
    gaps = [b - a for a, b in itertools.pairwise(times)]
    assert all(0.05 < gap < 0.3 for gap in gaps), gaps


async def test_a_node_answers_its_heartbeat_on_request(nc, start_metrics):
    metrics = await start_metrics()
    msg = await nc.request(subjects.node_heartbeat_now(metrics.node_id), b"", timeout=2)
    beat = unpack(msg.data, Heartbeat.from_dict)
    assert beat.node == metrics.node_id and beat.role == "metrics"


async def test_srv_ping_info_and_stats_find_every_actor(
    nc, upload, model_files, start_modelhost, make_gateway, start_metrics
):
    await upload("adder", model_files.add_one)
    host = await start_modelhost(heartbeat_interval_s=INTERVAL_S)
    gateway = await make_gateway(heartbeat_interval_s=INTERVAL_S)
    metrics = await start_metrics()
    expected = {
        (subjects.service_name("modelhost"), host.node_id),
        (subjects.service_name("gateway"), gateway.server.app[NODE_ID]),
        (subjects.service_name("metrics"), metrics.node_id),
    }

    async def gather(verb: str) -> list[dict]:
        inbox = nc.new_inbox()
        answers: list[dict] = []

        async def on_answer(msg: Msg) -> None:
            answers.append(json.loads(msg.data))

        sub = await nc.subscribe(inbox, cb=on_answer)
        await nc.publish(f"$SRV.{verb}", b"", reply=inbox)
        await eventually(lambda: len(answers) >= len(expected), timeout_s=5)
        await sub.unsubscribe()
        return answers

    pings = await gather("PING")
    assert {(p["name"], p["metadata"]["node"]) for p in pings} == expected
    assert all(p["type"] == "io.nats.micro.v1.ping_response" for p in pings)

    infos = await gather("INFO")
    for info in infos:
        assert info["description"], info
        assert info["version"]
        endpoints = {e["name"]: e for e in info["endpoints"]}
        assert endpoints["heartbeat"]["subject"] == subjects.node_heartbeat_now(
            info["metadata"]["node"]
        )
        assert all(e["metadata"] is not None for e in info["endpoints"])
    metrics_info = next(i for i in infos if i["name"] == subjects.service_name("metrics"))
    status = {e["name"]: e for e in metrics_info["endpoints"]}["cluster-status"]
    assert status["subject"] == subjects.cluster_status()
    assert status["queue_group"] == subjects.METRICS_QUEUE

    stats = await gather("STATS")
    for answer in stats:
        for endpoint in answer["endpoints"]:
            assert isinstance(endpoint["data"], dict), answer  # the nats CLI rejects null
            assert endpoint["data"]["node"] == answer["metadata"]["node"]
    host_stats = next(s for s in stats if s["metadata"]["node"] == host.node_id)
    assert host_stats["endpoints"][0]["data"]["models"] == ["adder:1"]

    # One kind at a time: $SRV.PING.<name> reaches only the modelhosts.
    msg = await nc.request(f"$SRV.PING.{subjects.service_name('modelhost')}", b"", timeout=2)
    assert json.loads(msg.data)["metadata"]["node"] == host.node_id


async def test_a_stopped_actor_leaves_discovery(nc, start_metrics):
    metrics = await start_metrics()
    await nc.request(f"$SRV.PING.{subjects.service_name('metrics')}", b"", timeout=2)
    await metrics.drain(2)
    try:
        await nc.request(f"$SRV.PING.{subjects.service_name('metrics')}", b"", timeout=0.5)
    except nats.errors.NoRespondersError:
        return
    raise AssertionError("a drained metrics actor still answers $SRV.PING")
