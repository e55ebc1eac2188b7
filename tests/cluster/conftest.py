"""A real 3-node NATS cluster on loopback for each test (tests/nats_cluster.py)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from tests.nats_cluster import NatsCluster


@pytest.fixture
async def cluster(tmp_path: Path) -> AsyncIterator[NatsCluster]:
    nodes = NatsCluster(tmp_path / "cluster")
    await nodes.start()
    yield nodes
    await nodes.stop()
