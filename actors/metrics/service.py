"""The metrics actor: follows every heartbeat, tells up from down, answers for the cluster.

It subscribes to `mlbuffet.heartbeat.>` (no queue group: every metrics actor
sees everything), sweeps for silent nodes a few times per heartbeat interval
and publishes `mlbuffet.events.node.<node>` when a node goes down or comes
back, answers `mlbuffet.cluster.status` (queue group `metrics`, an endpoint of
its micro service) and `mlbuffet.cluster.series` (its samples of the last
minutes, series.py), and serves Prometheus metrics on --metrics-port.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging

from nats.aio.client import Client
from nats.aio.msg import Msg
from nats.micro.request import Request
from prometheus_client import CollectorRegistry

from actors.base import Actor
from actors.metrics.cluster import ClusterView
from actors.metrics.collector import ClusterCollector
from actors.metrics.config import MetricsConfig
from actors.metrics.http import MetricsServer
from actors.metrics.series import ClusterSamples
from mlbuffet.mesh.events import publish_node_event
from mlbuffet.observe.heartbeat import NodeLoad
from mlbuffet.observe.presence import Presence
from mlbuffet.protocol import subjects
from mlbuffet.protocol.cluster import Heartbeat, SeriesRequest
from mlbuffet.protocol.errors import MLBuffetError
from mlbuffet.protocol.events import NodeEvent
from mlbuffet.protocol.wire import pack, pack_error, unpack

log = logging.getLogger(__name__)

SWEEPS_PER_INTERVAL = 4
MAX_SWEEP_S = 0.25


class MetricsService(Actor):
    role = "metrics"

    def __init__(self, nc: Client, config: MetricsConfig, node_id: str) -> None:
        super().__init__(nc, node_id)
        self.config = config
        self.view = ClusterView(config.down_after, config.forget_after_s)
        self.registry = CollectorRegistry(auto_describe=False)
        self.registry.register(ClusterCollector(self.view))
        self.server = MetricsServer(self.registry, config.metrics_host, config.metrics_port)
        self.presence = Presence(
            nc, self.role, node_id, lambda: NodeLoad(), config.heartbeat_interval_s
        )
        self.samples = ClusterSamples(config.sample_interval_s)
        self._sweeper: asyncio.Task[None] | None = None
        self._sampler: asyncio.Task[None] | None = None

    @property
    def metrics_url(self) -> str:
        host = f"[{self.server.host}]" if ":" in self.server.host else self.server.host
        return f"http://{host}:{self.server.port}/metrics"

    async def on_start(self) -> None:
        await self.server.start()
        # A plain callback, no task per message: heartbeats are tiny and in order.
        await self.subscribe(subjects.all_heartbeats(), cb=self._on_heartbeat)
        await self.presence.start()
        await self.presence.add_endpoint(
            "cluster-status",
            subjects.cluster_status(),
            self._on_cluster_status,
            queue_group=subjects.METRICS_QUEUE,
        )
        await self.presence.add_endpoint(
            "cluster-series",
            subjects.cluster_series(),
            self._on_cluster_series,
            queue_group=subjects.METRICS_QUEUE,
        )
        self._sweeper = asyncio.create_task(self._sweep_forever(), name="metrics-sweeper")
        self._sampler = asyncio.create_task(self._sample_forever(), name="metrics-sampler")

    async def on_stop(self) -> None:
        for task in (self._sweeper, self._sampler):
            if task is not None:
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await task
        self._sweeper = self._sampler = None
        await self.presence.stop()
        await self.server.stop()

    async def _on_heartbeat(self, msg: Msg) -> None:
        try:
            beat = unpack(msg.data, Heartbeat.from_dict)
        except MLBuffetError as exc:
            log.warning("ignoring a bad heartbeat on %s: %s", msg.subject, exc.message)
            return
        event = self.view.observe(beat)
        self.samples.observe(beat)
        if event is not None:
            await self._publish(event)

    async def _on_cluster_status(self, request: Request) -> None:
        await request.respond(pack(self.view.status(self.node_id)))

    async def _on_cluster_series(self, request: Request) -> None:
        """The kept samples; a SeriesRequest with `since` asks only for newer ones."""
        try:
            asked = (
                unpack(request.data, SeriesRequest.from_dict) if request.data else SeriesRequest()
            )
        except MLBuffetError as exc:
            await request.respond(pack_error(exc))
            return
        await request.respond(
            self.samples.packed_series(self.node_id, asked.since, self.nc.max_payload)
        )

    async def _sample_forever(self) -> None:
        while True:
            await asyncio.sleep(self.config.sample_interval_s)
            self.samples.take(self.view)

    async def _sweep_forever(self) -> None:
        period = min(MAX_SWEEP_S, self.config.heartbeat_interval_s / SWEEPS_PER_INTERVAL)
        while True:
            await asyncio.sleep(period)
            for event in self.view.sweep():
                await self._publish(event)

    async def _publish(self, event: NodeEvent) -> None:
        log.info("node %s (%s) is %s", event.node, event.role, event.event.value)
        await publish_node_event(self.nc, event)
