"""The gateway's side of the mesh: the only gateway module that talks to NATS.

`MeshLink` sends inference and echo requests, publishes model events, and holds
the registry with its live view. NATS failures become MLBuffet errors here,
in one place: no responders is 503, a timeout is 504.
"""

from __future__ import annotations

import logging
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any

import nats.errors
from aiohttp import web
from nats.aio.client import Client

from gateway.config import GatewayConfig
from gateway.hedge_metrics import HedgeMetrics
from gateway.http_metrics import HTTP_METRICS
from mlbuffet.mesh import request as nats_request
from mlbuffet.mesh.connection import NatsUnavailableError, close_quietly, connect
from mlbuffet.mesh.hedging import Hedging
from mlbuffet.mesh.placement import Placer
from mlbuffet.mesh.request import deadline_header
from mlbuffet.protocol import subjects
from mlbuffet.protocol.errors import (
    DeadlineExceededError,
    MLBuffetError,
    ModelNotReadyError,
    ServiceUnavailableError,
)
from mlbuffet.protocol.headers import Header
from mlbuffet.protocol.inference import EchoReply, EchoRequest, InferRequest, InferResponse
from mlbuffet.protocol.wire import pack, unpack
from mlbuffet.registry import ModelInspector, Registry, RegistryView
from mlbuffet.roles.runner import StartupError

log = logging.getLogger(__name__)


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

    def __post_init__(self) -> None:
        self.hedging = Hedging(self.config.hedging)
        self.placer = Placer(self.nc)

    async def request(
        self,
        subject: str,
        payload: bytes,
        deadline: float,
        hedging: Hedging | None = None,
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
            who="the gateway",
            hedging=hedging,
            place=place,
        )

    async def infer(self, request: InferRequest, timeout_s: float | None = None) -> InferResponse:
        """Inference is idempotent: a request whose host dies or refuses is hedged/retried."""
        deadline = time.time() + (timeout_s or self.config.request_timeout_s)
        data = await self.request(
            subjects.infer(request.model, request.version),
            pack(request),
            deadline,
            self.hedging,
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
        try:
            msg = await self.nc.request(
                subjects.infer(model, version), b"", timeout=deadline - time.time(), headers=headers
            )
        except nats.errors.NoRespondersError:
            raise ModelNotReadyError(f"no modelhost serves {model!r} right now") from None
        except nats.errors.TimeoutError:
            raise DeadlineExceededError(f"no modelhost of {model!r} answered in time") from None
        except nats.errors.Error:
            raise ServiceUnavailableError(
                "the gateway has lost its NATS connection; retry"
            ) from None
        return unpack(msg.data, InferResponse.from_dict)

    async def echo(self, data: Any, timeout_s: float | None = None) -> EchoReply:
        deadline = time.time() + (timeout_s or self.config.request_timeout_s)
        reply = await self.request(subjects.echo(), pack(EchoRequest(data=data)), deadline)
        return unpack(reply, EchoReply.from_dict)

    async def publish_event(self, event: str, model: str, version: int | None) -> None:
        """Tell the cluster what this gateway changed; best effort, never fails the request."""
        await nats_request.publish_model_event(self.nc, self.node_id, event, model, version)

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
        view = RegistryView(registry)
        await view.start()
        app[MESH] = mesh = MeshLink(nc, registry, view, inspector, node_id, config)
        app[HTTP_METRICS].registry.register(HedgeMetrics(mesh.hedging.counts))
        yield
        await view.stop()
    finally:
        inspector.close()
        await close_quietly(nc)
