"""A model read that fails while NATS is away is tried again, not given up on.

The real registry on a real nats-server: the server stops just before the
read and starts again on the same port and data a moment later, as a NATS
node does after a crash (or as a JetStream stream does after a leader election).
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging

import pytest

from actors.modelhost.loading import is_transient, read_model
from mlbuffet.natsd.server import NatsServer
from mlbuffet.protocol.errors import ModelNotFoundError, ServiceUnavailableError

AWAY_S = 6.0
"""Longer than the JetStream request timeout (5 s): the first read fails, then is retried."""


async def test_a_read_while_nats_is_down_is_retried_until_nats_is_back(
    nats_server, registry, upload, model_files, caplog
):
    caplog.set_level(logging.WARNING, logger="actors.modelhost.loading")
    await upload("adder", model_files.add_one)
    expected = await registry.read("adder", 1)
    await nats_server.stop()
    reading = asyncio.ensure_future(read_model(registry, "adder", 1, first_wait_s=0.1))
    await asyncio.sleep(AWAY_S)
    assert not reading.done()
    assert nats_server.port is not None
    again = NatsServer(dataclasses.replace(nats_server.config, port=nats_server.port))
    try:
        await again.start()
        data = await asyncio.wait_for(reading, 30)
    finally:
        await again.stop()
    retries = [r for r in caplog.records if "trying again" in r.getMessage()]
    print(f"\nread retried {len(retries)} times while nats-server was away for {AWAY_S} s")
    assert data == expected
    assert retries


async def test_a_missing_file_is_not_retried(registry):
    with pytest.raises(ModelNotFoundError):
        await read_model(registry, "nothing", 1)


def test_what_counts_as_transient():
    assert is_transient(TimeoutError())
    assert is_transient(ServiceUnavailableError("JetStream is electing a leader"))
    assert not is_transient(ModelNotFoundError("gone"))
    assert not is_transient(ValueError("bad model"))
