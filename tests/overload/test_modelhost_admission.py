"""A modelhost admits a bounded amount of work and refuses the rest at once, before decoding it.

In-process modelhost actors on a real nats-server and real onnxruntime. The
host is made small (1 compute thread, 1 request in flight, 1 queued) and kept
busy by one long run, so every further request meets a full host.
"""

from __future__ import annotations

import asyncio
import time

import numpy as np
import pytest

from mlbuffet import Client
from mlbuffet.protocol import subjects
from mlbuffet.protocol.errors import OverloadedError
from mlbuffet.protocol.headers import Header, deadline_header
from mlbuffet.protocol.inference import InferResponse
from mlbuffet.protocol.wire import pack, unpack
from tests.actors.conftest import arrays, infer, request_for
from tests.conftest import eventually
from tests.overload.conftest import SLOW_REPS, spin_inputs

REFUSED = 50


async def busy_host(start_modelhost, upload, spin_file, *, queued: int):
    """A host serving `spin` with 1 place in flight and `queued` in its queue."""
    await upload("spin", spin_file)
    host = await start_modelhost(workers=1, max_inflight=1, max_queued=queued)
    await eventually(lambda: "spin" in host.served)
    return host


async def test_work_beyond_the_places_in_flight_and_the_queue_is_refused_at_once(
    nc, start_modelhost, upload, spin_file
):
    host = await busy_host(start_modelhost, upload, spin_file, queued=1)
    running = asyncio.create_task(infer(nc, "spin", spin_inputs(1, SLOW_REPS), timeout=60))
    await eventually(lambda: host.stats.in_flight == 1)
    waiting = asyncio.create_task(infer(nc, "spin", spin_inputs(2), timeout=60))
    await eventually(lambda: host.tasks.queued == 1)
    assert host.heartbeat_load().counters["queued"] == 1

    # Payloads that are not even msgpack: refused before anyone looks at them.
    took: list[float] = []
    for _ in range(REFUSED):
        sent = time.perf_counter()
        msg = await nc.request(subjects.infer("spin"), b"\xc1 not msgpack", timeout=10)
        took.append(time.perf_counter() - sent)
        with pytest.raises(OverloadedError, match="at capacity"):
            unpack(msg.data, InferResponse.from_dict)
    took.sort()
    print(
        f"\n{REFUSED} refusals by a full modelhost over NATS: p50 {took[len(took) // 2] * 1e3:.2f} ms, "
        f"max {took[-1] * 1e3:.2f} ms (the long run meanwhile holds the only compute thread)"
    )
    assert host.stats.refused == REFUSED
    assert host.stats.rejected == 0  # not one was decoded

    first, second = await running, await waiting
    assert np.array_equal(arrays(first)["y"], spin_inputs(1)["x"])
    assert np.array_equal(arrays(second)["y"], spin_inputs(2)["x"])
    assert host.heartbeat_load().counters["refused"] == REFUSED
    # Room again: served as usual.
    again = await infer(nc, "spin", spin_inputs(3))
    assert np.array_equal(arrays(again)["y"], spin_inputs(3)["x"])


async def test_the_python_client_sees_a_full_host_as_overloaded(
    nc, nats_server, start_modelhost, upload, spin_file
):
    host = await busy_host(start_modelhost, upload, spin_file, queued=0)
    running = asyncio.create_task(infer(nc, "spin", spin_inputs(1, SLOW_REPS), timeout=60))
    await eventually(lambda: host.stats.in_flight == 1)
    async with await Client.connect(nats_server.url) as client:
        with pytest.raises(OverloadedError, match="at capacity"):
            await client.infer("spin", spin_inputs(2), timeout=30)
    await running


async def test_a_probe_is_answered_even_by_a_full_host(nc, start_modelhost, upload, spin_file):
    host = await busy_host(start_modelhost, upload, spin_file, queued=0)
    running = asyncio.create_task(infer(nc, "spin", spin_inputs(1, SLOW_REPS), timeout=60))
    await eventually(lambda: host.stats.in_flight == 1)
    with pytest.raises(OverloadedError):
        await infer(nc, "spin", spin_inputs(2))
    headers = {**deadline_header(time.time() + 5), Header.PROBE.value: "1"}
    msg = await nc.request(subjects.infer("spin"), b"", timeout=5, headers=headers)
    probe = unpack(msg.data, InferResponse.from_dict)
    assert probe.node == host.node_id and probe.outputs == ()
    await running
    assert host.stats.refused == 1


async def test_a_request_whose_deadline_passes_in_the_queue_is_never_computed(
    nc, start_modelhost, upload, spin_file
):
    host = await busy_host(start_modelhost, upload, spin_file, queued=4)
    running = asyncio.create_task(infer(nc, "spin", spin_inputs(1, SLOW_REPS), timeout=60))
    await eventually(lambda: host.stats.in_flight == 1)

    answers: list[bytes] = []

    async def on_answer(msg) -> None:
        answers.append(msg.data)

    inbox = nc.new_inbox()
    await nc.subscribe(inbox, cb=on_answer)
    await nc.publish(
        subjects.infer("spin"),
        pack(request_for("spin", spin_inputs(2))),
        reply=inbox,
        headers=deadline_header(time.time() + 0.1),
    )
    await eventually(lambda: host.tasks.queued == 1)
    await running  # the queued request starts only now, long past its deadline
    await eventually(lambda: host.stats.expired == 1)
    await nc.flush()
    await asyncio.sleep(0.2)
    assert answers == []  # the caller has given up: no answer is sent
    stats = host.stats.of("spin", 1)
    assert (stats.success, stats.failure) == (1, 0)  # only the long run was computed
