"""The gateway's side of the mesh: the only gateway module that talks to NATS.

`MeshLink` sends inference and echo requests and holds the registry with its
live view and its admin (which writes and announces changes). NATS failures
become MLBuffet errors through mlbuffet.mesh.errors: no responders is 503, a
timeout is 504.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass, field, replace
from typing import Any

import nats.errors
from aiohttp import web
from nats.aio.client import Client
from nats.aio.msg import Msg

from gateway.config import WHO, GatewayConfig
from gateway.hedge_metrics import HedgeMetrics
from gateway.http_metrics import HTTP_METRICS
from mlbuffet.mesh import request as nats_request
from mlbuffet.mesh.connection import NatsUnavailableError, close_quietly, connect
from mlbuffet.mesh.hedging import Hedging
from mlbuffet.mesh.placement import Placer
from mlbuffet.mesh.request import request_once
from mlbuffet.observe.event_history import open_event_history
from mlbuffet.protocol import subjects
from mlbuffet.protocol.cluster import Heartbeat
from mlbuffet.protocol.errors import (
    DeadlineExceededError,
    MLBuffetError,
    ModelNotReadyError,
)
from mlbuffet.protocol.headers import Header, deadline_header, deadline_ms_of
from mlbuffet.protocol.inference import EchoReply, EchoRequest, InferRequest, InferResponse
from mlbuffet.protocol.wire import pack, unpack
from mlbuffet.registry import ModelInspector, Registry, RegistryAdmin, RegistryView
from mlbuffet.roles.runner import StartupError

log = logging.getLogger(__name__)

HOST_COUNTERS_TIMEOUT_S = 1.0
"""How long a statistics request waits for each modelhost's counters."""
DISCOVERY_WINDOW_S = 1.0
"""How long a starting gateway listens for the modelhosts' PING answers."""


@dataclass
class MeshLink:
    nc: Client
    registry: Registry
    view: RegistryView
    inspector: ModelInspector
    node_id: str
    config: GatewayConfig
    hedging: Hedging = field(init=False)
    """Inference requests a host leaves unanswered (or refuses) go out again; see mlbuffet.mesh.hedging."""
    placer: Placer = field(init=False)
    """Asks the pool to load a model no host holds; see mlbuffet.mesh.placement."""
    admin: RegistryAdmin = field(init=False)
    """Every registry write of a route goes through it: mapped errors, then events."""
    modelhosts: set[str] = field(default_factory=set)
    """Node ids of the modelhosts whose heartbeats this gateway has seen (and not lost since)."""

    def __post_init__(self) -> None:
        self.hedging = Hedging(self.config.hedging)
        self.placer = Placer(self.nc)
        self.admin = RegistryAdmin(self.registry, self.nc, self.node_id, WHO, written=self.changed)

    async def request(
        self,
        subject: str,
        payload: bytes,
        deadline: float,
        hedging: Hedging | None = None,
        *,
        deadline_in_payload: bool = False,
        place: nats_request.Place | None = None,
    ) -> bytes:
        """One request/reply before `deadline` (Unix time), with NATS errors mapped.

        No responders is retried until the deadline, at most `no_responders_wait_s`:
        right after an upload or a restart, modelhosts need a moment to take a model.
        """
        return await nats_request.request(
            self.nc,
            subject,
            payload,
            deadline,
            no_responders_wait_s=self.config.no_responders_wait_s,
            who=WHO,
            hedging=hedging,
            deadline_in_payload=deadline_in_payload,
            place=place,
        )

    async def infer(self, request: InferRequest, timeout_s: float | None = None) -> InferResponse:
        """Inference is idempotent: a request whose host dies or refuses is hedged/retried."""
        deadline = time.time() + (timeout_s or self.config.request_timeout_s)
        data = await self.request(
            subjects.infer(request.model, request.version),
            pack(replace(request, deadline_ms=deadline_ms_of(deadline))),
            deadline,
            self.hedging,
            deadline_in_payload=True,
            place=lambda time_left_s: self.placer.place(request.model, time_left_s),
        )
        return unpack(data, InferResponse.from_dict)

    async def probe(
        self, model: str, version: int | None = None, timeout_s: float | None = None
    ) -> InferResponse:
        """Ask the hosts of `model` whether one is ready; ModelNotReadyError (503) if none is.

        The answer names the version and the host; nothing is computed.
        """
        deadline = time.time() + (timeout_s or self.config.request_timeout_s)
        headers = {**deadline_header(deadline), Header.PROBE.value: "1"}
        data = await request_once(
            self.nc,
            subjects.infer(model, version),
            b"",
            deadline - time.time(),
            who=WHO,
            no_responders=ModelNotReadyError(f"no modelhost serves {model!r} right now"),
            timed_out=DeadlineExceededError(f"no modelhost of {model!r} answered in time"),
            headers=headers,
        )
        return unpack(data, InferResponse.from_dict)

    async def echo(self, data: Any, timeout_s: float | None = None) -> EchoReply:
        deadline = time.time() + (timeout_s or self.config.request_timeout_s)
        reply = await self.request(subjects.echo(), pack(EchoRequest(data=data)), deadline)
        return unpack(reply, EchoReply.from_dict)

    async def heard_modelhost(self, msg: Msg) -> None:
        """A modelhost's heartbeat: remember the node, nothing more (no decoding per beat)."""
        self.modelhosts.add(subjects.heartbeat_node(msg.subject))

    async def discover_modelhosts(self) -> None:
        """Learn the modelhosts that were up before this gateway (later ones beat at start)."""
        inbox = self.nc.new_inbox()

        async def answered(msg: Msg) -> None:
            with contextlib.suppress(ValueError, AttributeError, TypeError):
                self.modelhosts.add(str(json.loads(msg.data)["metadata"]["node"]))

        sub = await self.nc.subscribe(inbox, cb=answered)
        try:
            await self.nc.publish(subjects.service_ping("modelhost"), b"", reply=inbox)
            await asyncio.sleep(DISCOVERY_WINDOW_S)
        finally:
            await sub.unsubscribe()

    async def modelhost_counters(self) -> list[Heartbeat]:
        """The current heartbeat of every known modelhost, asked of each now (not a stale beat).

        Statistics are read rarely and must count every request served so far,
        so they cost a request per host when asked rather than anything per
        inference. A host that does not answer is forgotten until it beats again.
        """

        async def ask(node: str) -> Heartbeat | None:
            try:
                msg = await self.nc.request(
                    subjects.node_heartbeat_now(node), b"", timeout=HOST_COUNTERS_TIMEOUT_S
                )
                return unpack(msg.data, Heartbeat.from_dict)
            except (nats.errors.Error, MLBuffetError):
                self.modelhosts.discard(node)
                return None

        beats = await asyncio.gather(*(ask(node) for node in sorted(self.modelhosts)))
        return [beat for beat in beats if beat is not None]

    async def changed(self) -> None:
        """After a registry write: wait until this gateway's view shows it (read your writes)."""
        try:
            await self.view.sync()
        except (TimeoutError, MLBuffetError, nats.errors.Error):
            log.warning("registry view did not catch up in time; reads may briefly lag")


MESH = web.AppKey("mesh", MeshLink)
CONFIG = web.AppKey("config", GatewayConfig)
NODE_ID = web.AppKey("node_id", str)


async def mesh_context(app: web.Application) -> AsyncIterator[None]:
    """aiohttp cleanup context: connect at start-up, drain and close at shutdown."""
    config = app[CONFIG]
    node_id = app[NODE_ID]
    try:
        nc = await connect(config.nats, name=node_id)
    except NatsUnavailableError as exc:
        raise StartupError(str(exc)) from None
    inspector = ModelInspector()
    try:
        registry, _ = await Registry.open(nc.jetstream(), replicas=config.registry_replicas)
        await open_event_history(nc.jetstream(), config.registry_replicas)
        view = RegistryView(registry)
        await view.start()
        app[MESH] = mesh = MeshLink(nc, registry, view, inspector, node_id, config)
        app[HTTP_METRICS].registry.register(HedgeMetrics(mesh.hedging.counts))
        heartbeats = await nc.subscribe(
            subjects.role_heartbeats("modelhost"), cb=mesh.heard_modelhost
        )
        discovery = asyncio.create_task(mesh.discover_modelhosts(), name="discover-modelhosts")
        yield
        discovery.cancel()
        with contextlib.suppress(asyncio.CancelledError, nats.errors.Error):
            await discovery
        with contextlib.suppress(nats.errors.Error):  # the connection may be gone already
            await heartbeats.unsubscribe()
        await view.stop()
    finally:
        inspector.close()
        await close_quietly(nc)
