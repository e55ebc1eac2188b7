"""Client fixtures: mlbuffet.Client on the real nats-server of the test, hosts waited for."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from mlbuffet import Client
from mlbuffet.natsd.server import NatsServer
from tests.conftest import eventually


@pytest.fixture
async def client(nats_server: NatsServer) -> AsyncIterator[Client]:
    assert nats_server.url is not None
    async with await Client.connect(nats_server.url, no_responders_wait=0.5) as connected:
        yield connected


async def serving(host, name: str, version: int | None = None) -> None:
    """Wait until `host` serves the registry's default of `name` (and it is `version`)."""

    def check() -> bool:
        served = host.served.get(name)
        record = host.view.records.get(name)
        if served is None or record is None:
            return False
        return served.default.version == record.default_version and (
            version is None or record.default_version == version
        )

    await eventually(check)
