"""Credentials reach NATS: a server that demands a user and password, or a token."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from mlbuffet import Client
from mlbuffet.cli.main import main
from mlbuffet.natsd.server import NatsServer, NatsServerConfig
from mlbuffet.protocol.errors import ServiceUnavailableError


@dataclass(frozen=True, slots=True)
class GuardedConfig(NatsServerConfig):
    """The test server's configuration plus an authorization block."""

    authorization: str = ""

    def render(self) -> str:
        return NatsServerConfig.render(self) + f"authorization {{\n{self.authorization}\n}}\n"


async def guarded(tmp_path: Path, authorization: str) -> NatsServer:
    server = NatsServer(
        GuardedConfig(data_dir=tmp_path / "nats", port=0, authorization=authorization)
    )
    await server.start()
    return server


@pytest.fixture
async def with_password(tmp_path: Path) -> AsyncIterator[str]:
    server = await guarded(tmp_path, '  user: "app"\n  password: "s3cret"')
    yield server.url or ""
    await server.stop()


@pytest.fixture
async def with_token(tmp_path: Path) -> AsyncIterator[str]:
    server = await guarded(tmp_path, '  token: "t0ken"')
    yield server.url or ""
    await server.stop()


async def test_a_user_and_password_are_passed_to_nats(with_password):
    with pytest.raises(ServiceUnavailableError, match="cannot reach NATS"):
        await Client.connect(with_password, connect_wait=0)
    with pytest.raises(ServiceUnavailableError):
        await Client.connect(with_password, user="app", password="wrong", connect_wait=0)
    async with await Client.connect(with_password, user="app", password="s3cret") as client:
        assert await client.models() == []


async def test_a_token_is_passed_to_nats_from_the_client_and_the_cli(with_token, capsys):
    async with await Client.connect(with_token, token="t0ken") as client:
        assert await client.models() == []
    denied = await asyncio.to_thread(
        main, ["models", "list", "--nats", with_token, "--nats-connect-wait", "0"]
    )
    allowed = await asyncio.to_thread(
        main, ["models", "list", "--json", "--nats", with_token, "--nats-token", "t0ken"]
    )
    assert (denied, allowed) == (5, 0)
    assert capsys.readouterr().out.splitlines()[-1] == "[]"
