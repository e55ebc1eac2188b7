"""The NATS configurations under deploy/nats are accepted by the real nats-server."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest

from mlbuffet.natsd.server import nats_server_binary
from mlbuffet.natsd.users import ROLE_NAMES

DEPLOY_NATS = Path(__file__).resolve().parents[2] / "deploy" / "nats"
CONFIGS = sorted(DEPLOY_NATS.glob("node-*.conf"))
ROLE_PASSWORDS = {f"MLBUFFET_NATS_{role.upper()}_PASSWORD": f"test-{role}" for role in ROLE_NAMES}
"""auth.conf, included by every node, reads each role's password from the environment."""


def test_there_is_one_config_per_node_of_a_three_node_cluster():
    assert [c.name for c in CONFIGS] == ["node-1.conf", "node-2.conf", "node-3.conf"]
    assert sorted(c.name for c in DEPLOY_NATS.glob("*.conf")) == [
        "auth.conf",
        *(c.name for c in CONFIGS),
    ]


@pytest.mark.parametrize("config", CONFIGS, ids=lambda c: c.name)
def test_nats_server_accepts_the_config(config: Path):
    checked = subprocess.run(
        [str(nats_server_binary()), "-t", "-c", str(config)],
        capture_output=True,
        text=True,
        timeout=30,
        env={**os.environ, **ROLE_PASSWORDS},
    )
    assert checked.returncode == 0, checked.stderr or checked.stdout
    text = config.read_text()
    for wanted in (
        "jetstream",
        "cluster",
        "nats-route://nats-1:6222",
        "nats-route://nats-3:6222",
        'include "auth.conf"',
    ):
        assert wanted in text


def test_a_node_without_the_role_passwords_does_not_start():
    """No silent default: a missing MLBUFFET_NATS_<ROLE>_PASSWORD stops nats-server."""
    environ = {k: v for k, v in os.environ.items() if not k.startswith("MLBUFFET_NATS_")}
    checked = subprocess.run(
        [str(nats_server_binary()), "-t", "-c", str(CONFIGS[0])],
        capture_output=True,
        text=True,
        timeout=30,
        env=environ,
    )
    assert checked.returncode != 0
    assert "MLBUFFET_NATS_" in checked.stderr + checked.stdout
