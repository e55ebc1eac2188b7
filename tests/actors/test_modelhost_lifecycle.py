"""Modelhosts as actors: load spreading, echo, deadlines, drain, and starting beside bad records."""

from __future__ import annotations

import asyncio
import time
from dataclasses import replace

import nats.errors
import numpy as np
import pytest

from mlbuffet.protocol import subjects
from mlbuffet.protocol.headers import Header
from mlbuffet.protocol.inference import EchoReply, EchoRequest, InferResponse
from mlbuffet.protocol.wire import pack, unpack
from tests.actors.conftest import added, adder_input, arrays, infer, request_for
from tests.conftest import eventually


async def test_concurrent_requests_are_spread_over_two_modelhosts(
    nc, upload, start_modelhost, model_files
):
    await upload("adder", model_files.add_one)
    hosts = [await start_modelhost(), await start_modelhost()]
    answers = await asyncio.gather(*(infer(nc, "adder", adder_input()) for _ in range(64)))
    assert {added(a) for a in answers} == {1.0}
    nodes = [a.node for a in answers]
    assert set(nodes) == {h.node_id for h in hosts}
    assert min(nodes.count(h.node_id) for h in hosts) >= 4


async def test_echo_answers_with_the_node_id_of_each_host(nc, start_modelhost):
    hosts = [await start_modelhost(), await start_modelhost()]
    replies = await asyncio.gather(
        *(nc.request(subjects.echo(), pack(EchoRequest(data=i)), timeout=5) for i in range(40))
    )
    echoes = [unpack(r.data, EchoReply.from_dict) for r in replies]
    assert [e.data for e in echoes] == list(range(40))
    assert {e.node for e in echoes} == {h.node_id for h in hosts}


async def test_one_host_serves_several_requests_at_once(nc, upload, start_modelhost, model_files):
    await upload("matmul", model_files.matmul)
    host = await start_modelhost(workers=2)
    x = {"x": np.ones((400, 256), np.float32)}
    started = time.perf_counter()
    await infer(nc, "matmul", x)
    one = time.perf_counter() - started
    seen: list[int] = []

    async def watch() -> None:
        while True:
            seen.append(len(host.tasks))
            await asyncio.sleep(0.005)

    watcher = asyncio.create_task(watch())
    await asyncio.gather(*(infer(nc, "matmul", x) for _ in range(4)))
    watcher.cancel()
    await asyncio.gather(watcher, return_exceptions=True)
    assert max(seen) >= 2, f"never more than one request in flight ({one:.3f}s each)"


async def test_a_request_past_its_deadline_gets_no_answer_and_is_counted(
    nc, upload, start_modelhost, model_files
):
    await upload("adder", model_files.add_one)
    host = await start_modelhost()
    payload = pack(request_for("adder", adder_input()))
    past = str(int(time.time() * 1000) - 1000)
    with pytest.raises(nats.errors.TimeoutError):
        await nc.request(
            subjects.infer("adder"), payload, timeout=0.5, headers={Header.DEADLINE.value: past}
        )
    assert host.stats.expired == 1
    future = str(int(time.time() * 1000) + 60_000)
    msg = await nc.request(
        subjects.infer("adder"), payload, timeout=5, headers={Header.DEADLINE.value: future}
    )
    assert added(unpack(msg.data, InferResponse.from_dict)) == 1.0
    assert host.stats.expired == 1


async def test_a_deadline_in_the_payload_is_kept_and_the_reply_has_no_headers(
    nc, upload, start_modelhost, model_files
):
    await upload("adder", model_files.add_one)
    host = await start_modelhost()
    request = request_for("adder", adder_input())
    past = pack(replace(request, deadline_ms=int(time.time() * 1000) - 1000))
    with pytest.raises(nats.errors.TimeoutError):
        await nc.request(subjects.infer("adder"), past, timeout=0.5)
    assert host.stats.expired == 1
    future = pack(replace(request, deadline_ms=int(time.time() * 1000) + 60_000))
    msg = await nc.request(subjects.infer("adder"), future, timeout=5)
    assert added(unpack(msg.data, InferResponse.from_dict)) == 1.0
    assert host.stats.expired == 1
    # nats-py's msg.respond would have sent the request's headers back: the host does not.
    headed = await nc.request(
        subjects.infer("adder"),
        future,
        timeout=5,
        headers={Header.DEADLINE.value: str(int(time.time() * 1000) + 60_000)},
    )
    assert added(unpack(headed.data, InferResponse.from_dict)) == 1.0
    assert not headed.headers


async def test_drain_finishes_the_requests_in_flight_then_takes_no_more(
    nc, upload, start_modelhost, model_files
):
    await upload("matmul", model_files.matmul)
    host = await start_modelhost()
    x = {"x": np.ones((1500, 256), np.float32)}
    in_flight = [asyncio.create_task(infer(nc, "matmul", x, timeout=20)) for _ in range(3)]
    # All three reached the host and none is done: they are in flight when the drain starts.
    await eventually(lambda: len(host.tasks) == 3)
    await host.drain(timeout_s=20)
    answers = await asyncio.gather(*in_flight)
    assert all(arrays(a)["y"].shape == (1500, 256) for a in answers)
    assert not host.running
    with pytest.raises(nats.errors.NoRespondersError):
        await infer(nc, "matmul", x)


async def test_a_host_starts_and_serves_beside_a_corrupt_record(
    nc, registry, upload, start_modelhost, model_files
):
    await upload("good", model_files.add_one)
    await registry.kv.put("broken", b"{not json")
    host = await start_modelhost()
    assert set(host.served) == {"good"}
    assert added(await infer(nc, "good", adder_input())) == 1.0


async def test_a_model_onnxruntime_cannot_load_is_not_served_and_the_rest_is(
    nc, registry, upload, start_modelhost, model_files
):
    await upload("good", model_files.add_one)
    await upload("tampered", model_files.add_two)
    # The file changes behind the registry's back: its sha256 no longer matches.
    with model_files.add_ten.open("rb") as f:
        await registry.files.put(subjects.file_object("tampered", 1), f)
    host = await start_modelhost()
    assert set(host.served) == {"good"}
    with pytest.raises(nats.errors.NoRespondersError):
        await infer(nc, "tampered", adder_input())
