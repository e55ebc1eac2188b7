"""Observability fixtures: a metrics actor on a real NATS, heartbeat collection, Prometheus scrapes."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import aiohttp
import pytest
from nats.aio.client import Client
from nats.aio.msg import Msg
from prometheus_client.parser import text_string_to_metric_families

from actors.metrics.config import MetricsConfig
from actors.metrics.service import MetricsService
from mlbuffet.config import NatsConfig
from mlbuffet.mesh.connection import close_quietly, connect, flush_subscriptions
from mlbuffet.protocol.cluster import Heartbeat
from mlbuffet.protocol.events import NodeEvent
from mlbuffet.protocol.wire import unpack
from mlbuffet.roles.node_ids import new_node_id
from tests.cli.conftest import spawn, start_up  # noqa: F401 (shared fixtures)
from tests.gateway.conftest import gateway, make_gateway  # noqa: F401 (shared fixtures)
from tests.security.conftest import key_ring, scoped_keys  # noqa: F401 (shared fixtures)
from tests.trainer.conftest import iris_csv, start_trainer  # noqa: F401 (shared fixtures)

INTERVAL_S = 0.2
"""Heartbeat interval of every node in these tests: short, so the suite stays fast."""

StartMetrics = Callable[..., Awaitable[MetricsService]]


@pytest.fixture
async def start_metrics(nats_config: NatsConfig) -> AsyncIterator[StartMetrics]:
    """Metrics actors in this process, Prometheus on an ephemeral port, short heartbeats."""
    started: list[tuple[MetricsService, Client]] = []

    async def start(**settings: Any) -> MetricsService:
        settings.setdefault("metrics_port", 0)
        settings.setdefault("heartbeat_interval_s", INTERVAL_S)
        config = MetricsConfig(nats=nats_config, **settings)
        client = await connect(nats_config, name="test-metrics")
        actor = MetricsService(client, config, new_node_id("metrics"))
        await actor.start()
        started.append((actor, client))
        return actor

    yield start
    for actor, client in started:
        await actor.drain(5)
        await close_quietly(client)


class Recorder:
    """Every message on a subject, decoded with `parse`, as it arrives."""

    def __init__(self) -> None:
        self.messages: list[Any] = []
        self.arrived = asyncio.Event()

    def note(self, message: Any) -> None:
        self.messages.append(message)
        self.arrived.set()

    async def wait_for(self, match: Callable[[Any], bool], timeout_s: float = 10.0) -> Any:
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout_s
        while True:
            for message in self.messages:
                if match(message):
                    return message
            left = deadline - loop.time()
            if left <= 0:
                pytest.fail(
                    f"no matching message within {timeout_s}s; got {self.messages!r}"[:2000]
                )
            self.arrived.clear()
            try:
                await asyncio.wait_for(self.arrived.wait(), left)
            except TimeoutError:
                pass


async def record(nc: Client, subject: str, parse: Callable[[Any], Any]) -> Recorder:
    recorder = Recorder()

    async def on_message(msg: Msg) -> None:
        recorder.note(unpack(msg.data, parse))

    await nc.subscribe(subject, cb=on_message)
    await flush_subscriptions(nc)
    return recorder


async def heartbeats(nc: Client, subject: str = "mlbuffet.heartbeat.>") -> Recorder:
    return await record(nc, subject, Heartbeat.from_dict)


async def node_events(nc: Client) -> Recorder:
    return await record(nc, "mlbuffet.events.node.>", NodeEvent.from_dict)


async def scrape(url: str) -> dict[str, Any]:
    """A Prometheus scrape parsed by prometheus_client's own parser: sample name -> samples."""
    async with aiohttp.ClientSession() as session, session.get(url) as response:
        assert response.status == 200, await response.text()
        assert response.headers["Content-Type"].startswith("text/plain")
        text = await response.text()
    samples: dict[str, Any] = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            samples.setdefault(sample.name, []).append(sample)
    return samples


def value(samples: dict[str, Any], name: str, **labels: str) -> float:
    """The sum of the samples called `name` whose labels include `labels` (0 if none)."""
    return sum(
        s.value
        for s in samples.get(name, [])
        if all(s.labels.get(k) == v for k, v in labels.items())
    )
