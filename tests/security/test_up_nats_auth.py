"""The embedded nats-server with users: `up` generates them, `mlbuffet nats` includes the shipped ones."""

from __future__ import annotations

import asyncio
import re
import stat
from pathlib import Path

import pytest

from mlbuffet.cli.nats import parse_args as nats_args
from mlbuffet.config import ConfigError, NatsConfig
from mlbuffet.mesh.connection import NatsUnavailableError, close_quietly, connect
from mlbuffet.natsd.users import ROLE_NAMES, GeneratedCredentials, new_password, password_variable
from mlbuffet.registry import Registry
from tests.cli.conftest import Spawn, StartUp, spawn, start_up
from tests.cli.rest import predict
from tests.security.nats_secure import DEPLOY_AUTH

__all__ = ["spawn", "start_up"]

pytestmark = pytest.mark.processes


def test_up_with_generated_nats_users_serves_and_refuses_strangers(
    start_up: StartUp, tmp_path: Path
):
    up = start_up("--modelhosts", "1", "--nats-auth")
    assert predict(up.rest, "iris", [5.1, 3.5, 1.4, 0.2]) == [0]
    assert "a user per role with generated passwords" in up.out()
    conf = tmp_path / "data" / "nats-server.conf"
    assert stat.S_IMODE(conf.stat().st_mode) == 0o600
    text = conf.read_text()
    assert 'user: "gateway"' in text and 'user: "modelhost"' in text
    # No password is on a command line: the children got theirs in their environment.
    for pid in up.descendants():
        cmdline = Path(f"/proc/{pid}/cmdline").read_bytes()
        assert b"--nats-password" not in cmdline
    # Without a password nobody gets in.
    with pytest.raises(NatsUnavailableError):
        asyncio.run(connect(NatsConfig(urls=(up.nats,), connect_wait_s=0), name="stranger"))


def test_generated_credentials_are_fresh_and_rendered_for_each_role():
    first, second = GeneratedCredentials.generate(), GeneratedCredentials.generate()
    assert set(first.passwords) == {"admin", "gateway", "modelhost", "trainer", "metrics"}
    assert all(len(p) == 49 and p.isalnum() and p[0].isalpha() for p in first.passwords.values())
    assert not set(first.passwords.values()) & set(second.passwords.values())
    text = first.authorization()
    for password in first.passwords.values():
        assert password in text


LISTENING = re.compile(r"^nats-server listening on (nats://\S+) ", re.M)


def test_mlbuffet_nats_with_the_shipped_users(spawn: Spawn, tmp_path: Path):
    passwords = {role: new_password() for role in ROLE_NAMES}
    env = {password_variable(role): password for role, password in passwords.items()}
    proc = spawn(
        "nats",
        "--nats-port",
        "0",
        "--data-dir",
        str(tmp_path / "n"),
        "--include",
        str(DEPLOY_AUTH),
        env=env,
    )
    url = proc.wait_for_output(LISTENING, 20).group(1)

    async def check() -> None:
        nc = await connect(
            NatsConfig(urls=(url,), user="gateway", password=passwords["gateway"]), name="gw"
        )
        registry, created = await Registry.open(nc.jetstream())
        assert created and await registry.list() == []
        await close_quietly(nc)
        with pytest.raises(NatsUnavailableError):
            await connect(NatsConfig(urls=(url,), connect_wait_s=0), name="stranger")

    asyncio.run(check())


@pytest.mark.parametrize(
    ("args", "refused"),
    [
        (["--host", "0.0.0.0"], True),
        (["--host", "0.0.0.0", "--insecure"], False),
        (["--host", "0.0.0.0", "--include", str(DEPLOY_AUTH)], False),
        (["--include", "/nonexistent/auth.conf"], True),
        ([], False),
    ],
)
def test_mlbuffet_nats_beyond_loopback_needs_users(args: list[str], refused: bool):
    if refused:
        with pytest.raises(ConfigError):
            nats_args(args, {})
    else:
        nats_args(args, {})
