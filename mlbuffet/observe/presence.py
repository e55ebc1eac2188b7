"""How a node makes itself seen: its heartbeat, and a NATS micro service for discovery.

Every role (gateway, modelhost, metrics, trainer) starts one Presence. The micro
service (`mlbuffet-<role>`) answers `$SRV.PING`, `$SRV.INFO` and `$SRV.STATS`
so the `nats` CLI and any NATS tooling find every node; its `heartbeat`
endpoint answers the node's current Heartbeat at once, and its stats carry a
`data` map with the node's load (the `nats` CLI rejects a null `data`).
Roles add their own endpoints with `add_endpoint` (the metrics actor's
cluster status).
"""

from __future__ import annotations

import logging
import socket
from collections.abc import Awaitable, Callable
from typing import Any

from nats.aio.client import Client
from nats.micro import add_service
from nats.micro.request import Request
from nats.micro.service import EndpointStats, Service, ServiceConfig

from mlbuffet.mesh.connection import flush_subscriptions, while_connected
from mlbuffet.observe.heartbeat import (
    DEFAULT_INTERVAL_S,
    HeartbeatPublisher,
    NodeLoad,
    mlbuffet_version,
)
from mlbuffet.protocol import subjects
from mlbuffet.protocol.wire import pack

log = logging.getLogger(__name__)

SERVICE_STOP_TIMEOUT_S = 10.0

DESCRIPTIONS = {
    "gateway": "MLBuffet REST gateway: HTTP in, inference requests out on NATS",
    "modelhost": "MLBuffet modelhost: serves ONNX models on mlbuffet.infer.<model>[.<version>]",
    "metrics": "MLBuffet metrics actor: cluster view, node up/down events, Prometheus metrics",
    "trainer": "MLBuffet trainer: runs training jobs from mlbuffet.train.submit, registers their models",
}


class Presence:
    def __init__(
        self,
        nc: Client,
        role: str,
        node_id: str,
        load: Callable[[], NodeLoad],
        interval_s: float = DEFAULT_INTERVAL_S,
    ) -> None:
        self.nc = nc
        self.role = role
        self.node_id = node_id
        self.heartbeat = HeartbeatPublisher(nc, role, node_id, load, interval_s)
        self.service: Service | None = None

    async def start(self) -> None:
        """Register the micro service, then start beating (the first beat goes out at once)."""
        self.service = await add_service(
            self.nc,
            ServiceConfig(
                name=subjects.service_name(self.role),
                version=mlbuffet_version(),
                description=DESCRIPTIONS.get(self.role, f"MLBuffet {self.role}"),
                metadata={"node": self.node_id, "role": self.role, "host": socket.gethostname()},
                stats_handler=self._stats_data,
            ),
        )
        await self.add_endpoint("heartbeat", subjects.node_heartbeat_now(self.node_id), self._now)
        self.heartbeat.start()

    async def add_endpoint(
        self,
        name: str,
        subject: str,
        handler: Callable[[Request], Awaitable[None]],
        queue_group: str | None = None,
    ) -> None:
        assert self.service is not None, "start() first"
        await self.service.add_endpoint(
            name=name,
            subject=subject,
            handler=handler,
            queue_group=queue_group or self.node_id,
            metadata={"node": self.node_id},
        )
        # nats.micro subscribes without a flush: make sure the server knows before we say ready.
        await flush_subscriptions(self.nc)

    async def stop(self) -> None:
        await self.heartbeat.stop()
        service, self.service = self.service, None
        if service is not None:
            try:
                # Stopping drains the endpoints: the server must answer, so
                # give up at once if NATS is going away with us.
                await while_connected(self.nc, service.stop(), SERVICE_STOP_TIMEOUT_S)
            except Exception:
                log.debug("micro service of %s did not stop cleanly", self.node_id, exc_info=True)

    async def _now(self, request: Request) -> None:
        await request.respond(pack(self.heartbeat.current()))

    def _stats_data(self, endpoint: EndpointStats) -> dict[str, Any]:
        beat = self.heartbeat.current()
        return {
            "node": beat.node,
            "role": beat.role,
            "in_flight": beat.in_flight,
            "models": [f"{m.model}:{m.version}" for m in beat.models],
            "rss_bytes": beat.rss_bytes,
            "cpu_percent": beat.cpu_percent,
        }
