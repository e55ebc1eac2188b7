"""The NATS configurations under deploy/nats are accepted by the real nats-server."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from mlbuffet.natsserver import nats_server_binary

DEPLOY_NATS = Path(__file__).resolve().parents[2] / "deploy" / "nats"
CONFIGS = sorted(DEPLOY_NATS.glob("*.conf"))


def test_there_is_one_config_per_node_of_a_three_node_cluster():
    assert [c.name for c in CONFIGS] == ["node-1.conf", "node-2.conf", "node-3.conf"]


@pytest.mark.parametrize("config", CONFIGS, ids=lambda c: c.name)
def test_nats_server_accepts_the_config(config: Path):
    checked = subprocess.run(
        [str(nats_server_binary()), "-t", "-c", str(config)],
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert checked.returncode == 0, checked.stderr or checked.stdout
    text = config.read_text()
    for wanted in ("jetstream", "cluster", "nats-route://nats-1:6222", "nats-route://nats-3:6222"):
        assert wanted in text
