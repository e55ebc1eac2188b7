"""`mlbuffet up --nats-auth`: the embedded nats-server gets generated users; strangers are out."""

from __future__ import annotations

import asyncio
import stat
from pathlib import Path

import pytest

from mlbuffet.config import NatsConfig
from mlbuffet.connection import NatsUnavailableError, connect
from mlbuffet.natsauth import GeneratedCredentials
from tests.cli.conftest import StartUp, start_up
from tests.cli.rest import predict

__all__ = ["start_up"]

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
    assert set(first.passwords) == {"admin", "gateway", "modelhost"}
    assert all(len(p) >= 24 for p in first.passwords.values())
    assert not set(first.passwords.values()) & set(second.passwords.values())
    text = first.authorization()
    for password in first.passwords.values():
        assert password in text
