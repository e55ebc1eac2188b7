"""Ten times the capacity of one modelhost, through a real gateway: refused fast, memory flat.

Every part is a real process (nats-server, gateway, modelhost); the modelhost
is made small on purpose (1 compute thread, 2 requests in flight, 4 queued)
and the model slow (a few ms a run), while 200 clients ask at once.
Run with `-s` to see the figures.
"""

from __future__ import annotations

import asyncio
import json
import statistics
import time

import aiohttp
import pytest

from mlbuffet.natsd.server import NatsServer
from mlbuffet.protocol import subjects
from mlbuffet.protocol.cluster import Heartbeat
from mlbuffet.protocol.wire import unpack
from tests.overload.conftest import RssSampler, listening_url, spin_values

REQUESTS = 3000
CLIENTS = 200
REPS = 64
"""Rows of the spin model's run: about 4 ms of one core."""
SEEDS = 50
"""Distinct inputs, so that each answer shows it is the answer to its own request."""
MAX_LOAD_S = 40.0
"""No new request after this long, whatever is left (a loaded machine is slow, never stuck)."""
RSS_GROWTH_BYTES = 50 * 1024 * 1024
MIB = 1024 * 1024


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


@pytest.mark.processes
async def test_ten_times_a_modelhosts_capacity_is_refused_fast_and_memory_stays_flat(
    nats_server: NatsServer, nc, upload, spin_file, start_role
):
    await upload("spin", spin_file)
    host = await start_role(
        "modelhost", "--node-id", "modelhost-small", "--workers", "1",
        "--max-inflight", "2", "--max-queued", "4", "--heartbeat-interval", "0.5",
        ready="modelhost modelhost-small ready",
    )  # fmt: skip
    gateway = await start_role("gateway", "--port", "0", ready="listening on")
    url = f"{listening_url(gateway.ready)}/api/v1/models/spin/prediction"
    assert nats_server.pid is not None
    sampler = RssSampler({"gateway": gateway.pid, "modelhost": host.pid, "nats": nats_server.pid})

    # (status, seconds, whether the answer was the input, Retry-After) per request
    results: list[tuple[int, float, bool, str | None]] = []
    next_request = iter(range(REQUESTS))

    # Encoded once: the test's own client must not be what limits the load.
    bodies = [json.dumps({"values": spin_values(seed, REPS)}).encode() for seed in range(SEEDS)]
    expected = [spin_values(seed, REPS)["x"] for seed in range(SEEDS)]
    headers = {"Content-Type": "application/json"}

    async def client(session: aiohttp.ClientSession, stop_at: float) -> None:
        for i in next_request:
            if time.monotonic() > stop_at:
                return
            sent = time.perf_counter()
            async with session.post(url, data=bodies[i % SEEDS], headers=headers) as response:
                body = await response.json()
                took = time.perf_counter() - sent
                correct = response.status == 200 and body["values"] == expected[i % SEEDS]
                results.append(
                    (response.status, took, correct, response.headers.get("Retry-After"))
                )

    connector = aiohttp.TCPConnector(limit=CLIENTS)
    timeout = aiohttp.ClientTimeout(total=60)
    sampling = asyncio.create_task(sampler.run())
    loop = asyncio.get_running_loop()
    async with aiohttp.ClientSession(connector=connector, timeout=timeout) as session:
        started = loop.time()
        stop_at = time.monotonic() + MAX_LOAD_S
        await asyncio.wait_for(
            asyncio.gather(*(client(session, stop_at) for _ in range(CLIENTS))), MAX_LOAD_S + 60
        )
        ended = loop.time()
    sampling.cancel()

    statuses: dict[int, int] = {}
    for status, *_ in results:
        statuses[status] = statuses.get(status, 0) + 1
    ok = [r for r in results if r[0] == 200]
    refused = [r for r in results if r[0] == 503]
    middle = (started + ended) / 2
    first, second = sampler.peaks(started, middle), sampler.peaks(middle, ended + 0.001)
    print(
        f"\noverload: {len(results)} requests in {ended - started:.1f} s by {CLIENTS} clients "
        f"on 1 modelhost (2 in flight + 4 queued, ~{REPS} rows a run): statuses {statuses}"
    )
    if refused:
        times = [r[1] * 1000 for r in refused]
        print(
            f"refusals: {len(refused)}, latency p50 {percentile(times, 0.5):.1f} ms, "
            f"p99 {percentile(times, 0.99):.1f} ms, max {max(times):.1f} ms"
        )
    if ok:
        times = [r[1] * 1000 for r in ok]
        print(
            f"successes: {len(ok)}, latency p50 {statistics.median(times):.1f} ms, "
            f"p99 {percentile(times, 0.99):.1f} ms"
        )
    for name in sampler.pids:
        print(
            f"RSS {name}: peak {first[name] / MIB:.1f} MiB in the first half, "
            f"{second[name] / MIB:.1f} MiB in the second"
        )

    assert len(results) >= REQUESTS // 3, "the load stalled"
    assert set(statuses) <= {200, 503}, statuses
    assert refused, "ten times the capacity and nothing was refused"
    assert ok, "nothing succeeded"
    assert all(r[2] for r in ok), "a success with a wrong answer"
    assert all(r[3] == "1" for r in refused), "a 503 without Retry-After: 1"
    for name in sampler.pids:
        assert second[name] <= first[name] + RSS_GROWTH_BYTES, (name, first, second)

    # The host counted every refusal it sent (the gateway refused none: 200 < its limit):
    # each 503 the clients saw, plus the copies the gateway hedged or retried that it refused.
    async with aiohttp.ClientSession() as session:
        async with session.get(f"{listening_url(gateway.ready)}/metrics") as response:
            scrape = await response.text()
    copies = sum(
        int(float(line.split()[-1]))
        for line in scrape.splitlines()
        if line.startswith(("mlbuffet_inference_hedges_total", "mlbuffet_inference_retries_total"))
    )
    print(f"overload: the gateway sent {copies} extra copies (hedges and retries of a 503)")
    beats: asyncio.Queue[Heartbeat] = asyncio.Queue()

    async def on_beat(msg) -> None:
        await beats.put(unpack(msg.data, Heartbeat.from_dict))

    sub = await nc.subscribe(subjects.heartbeat("modelhost", "modelhost-small"), cb=on_beat)
    counted = 0
    async with asyncio.timeout(10):
        while counted < len(refused):
            counted = (await beats.get()).counters.get("refused", 0)
    await sub.unsubscribe()
    assert counted <= len(refused) + copies, (counted, len(refused), copies)

    # Afterwards the host serves as before.
    async with aiohttp.ClientSession() as session:
        values = spin_values(7, REPS)
        async with session.post(url, json={"values": values}) as response:
            assert response.status == 200
            assert (await response.json())["values"] == values["x"]
