"""Real modelhost processes, started as a user starts them; one dies by SIGKILL under load."""

from __future__ import annotations

import asyncio
import signal
import time
from collections.abc import AsyncIterator
from pathlib import Path

import nats.errors
import pytest

from mlbuffet.natsd.server import NatsServer
from mlbuffet.protocol.errors import MLBuffetError
from tests.actors.conftest import added, adder_input, infer
from tests.modelhost_processes import ModelhostProcess, start_modelhost_process


@pytest.fixture
async def spawn(nats_server: NatsServer, tmp_path: Path) -> AsyncIterator:
    started: list[ModelhostProcess] = []

    async def start(node_id: str) -> ModelhostProcess:
        assert nats_server.url is not None
        host = await start_modelhost_process(nats_server.url, node_id, tmp_path)
        started.append(host)
        return host

    yield start
    for host in started:
        await host.stop()


@pytest.mark.processes
async def test_a_modelhost_killed_under_load_leaves_the_other_serving_every_request(
    nc, upload, model_files, spawn
):
    await upload("adder", model_files.add_one)
    victim, survivor = await asyncio.gather(spawn("modelhost-victim"), spawn("modelhost-survivor"))
    answers: list[tuple[float, str]] = []  # (time the answered attempt was sent, node)
    retried = 0
    killed_at: float | None = None

    async def one_request() -> None:
        nonlocal retried
        for _ in range(20):
            sent = time.monotonic()
            try:
                response = await infer(nc, "adder", adder_input(), timeout=1.0)
            except (nats.errors.TimeoutError, nats.errors.NoRespondersError):
                retried += 1  # it went to the dead host: ask again
                continue
            assert added(response) == 1.0
            answers.append((sent, response.node))
            return
        pytest.fail("a request was never answered")

    async def client() -> None:
        for _ in range(150):  # bounded; stops once enough answers came after the kill
            await one_request()
            if killed_at is not None and sum(t > killed_at for t, _ in answers) >= 60:
                return

    clients = [asyncio.create_task(client()) for _ in range(6)]
    try:
        await wait_for(lambda: {n for _, n in answers} == {victim.node_id, survivor.node_id})
        await wait_for(lambda: len(answers) >= 60)
        victim.process.send_signal(signal.SIGKILL)
        killed_at = time.monotonic()
        await asyncio.gather(*clients)
    finally:
        for task in clients:
            task.cancel()
        await asyncio.gather(*clients, return_exceptions=True)

    assert await victim.process.wait() == -signal.SIGKILL
    after = [n for t, n in answers if t > killed_at]
    before = [n for t, n in answers if t <= killed_at]
    assert len(after) >= 60
    assert set(after) == {survivor.node_id}
    assert survivor.node_id in before and victim.node_id in before
    # The survivor still drains and exits cleanly on SIGTERM.
    assert await survivor.stop() == 0


async def wait_for(check, timeout_s: float = 15.0) -> None:
    deadline = time.monotonic() + timeout_s
    while not check():
        if time.monotonic() > deadline:
            pytest.fail(f"condition not met within {timeout_s}s")
        await asyncio.sleep(0.02)


@pytest.mark.processes
async def test_a_modelhost_process_serves_and_exits_cleanly_on_sigterm(
    nc, upload, model_files, spawn
):
    await upload("adder", model_files.add_two)
    host = await spawn("modelhost-solo")
    response = await infer(nc, "adder", adder_input())
    assert (response.node, added(response)) == ("modelhost-solo", 2.0)
    assert await host.stop() == 0
    with pytest.raises((nats.errors.NoRespondersError, MLBuffetError)):
        await infer(nc, "adder", adder_input())
