"""The modelhost actor: serves inference for its models from the registry.

For each model it serves, the host subscribes to `mlbuffet.infer.<model>`
(the default version) and `mlbuffet.infer.<model>.*` (pinned versions) in the
`modelhost` queue group, so every host of a model competes for its requests.
It subscribes only once the default version is loaded and warmed, and swaps a
new default in only once that one is loaded and warmed (reconcile.py), so no
request ever reaches a host that cannot answer it. The loaded versions and
how a request runs on them are the model set's (model_set.py); this module
subscribes, admits, answers and counts. A model no host holds is loaded when a
caller asks for it on `mlbuffet.place.<model>` (queue group `modelhost`): the
host makes room in its memory budget (room.py), loads it, subscribes, and
only then answers.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Mapping

from nats.aio.client import Client
from nats.aio.msg import Msg
from nats.aio.subscription import Subscription

from actors.base import Actor
from actors.modelhost.batching import RequestExpired
from actors.modelhost.config import ModelhostConfig
from actors.modelhost.loading import read_model
from actors.modelhost.model_set import ModelSet, ModelSetLimits, ModelVersions
from actors.modelhost.reconcile import Reconciler
from actors.modelhost.room import Room
from actors.modelhost.runtime import ModelRuntime
from actors.modelhost.stall import Change, StallWatch
from actors.modelhost.stats import HostStats
from mlbuffet.mesh.errors import check_payload
from mlbuffet.mesh.events import publish_model_event
from mlbuffet.observe.event_history import open_event_history
from mlbuffet.observe.heartbeat import NodeLoad
from mlbuffet.observe.histograms import merged, summary
from mlbuffet.observe.presence import Presence
from mlbuffet.protocol import subjects
from mlbuffet.protocol.errors import (
    BadRequestError,
    InternalError,
    MLBuffetError,
    ModelNotReadyError,
    ModelTooLargeError,
    OverloadedError,
)
from mlbuffet.protocol.events import ModelEventKind
from mlbuffet.protocol.headers import Header, deadline_ms
from mlbuffet.protocol.inference import EchoReply, EchoRequest, InferRequest, InferResponse
from mlbuffet.protocol.placement import PlaceReply
from mlbuffet.protocol.wire import pack, pack_error, unpack_map
from mlbuffet.registry import Registry, RegistryView

log = logging.getLogger(__name__)

LOAD_WAIT_ON_STOP_S = 10.0


class ModelhostService(Actor):
    role = "modelhost"

    def __init__(self, nc: Client, config: ModelhostConfig, node_id: str) -> None:
        super().__init__(
            nc, node_id, max_inflight=config.max_inflight, max_queued=config.queue_limit
        )
        self.config = config
        self._busy = pack_error(
            OverloadedError(
                f"modelhost {node_id} is at capacity ({config.max_inflight} requests in flight, "
                f"{config.queue_limit} queued); retry shortly"
            )
        )
        """The answer to a request refused for want of room: packed once, sent as is."""
        self.stats = HostStats()
        self.stall = StallWatch(config.stall_after_s)
        self._stall_watch: asyncio.Task[None] | None = None
        self.models = ModelSet(
            self._fetch,
            ModelSetLimits(
                workers=config.workers,
                intra_op_threads=config.intra_op_threads,
                pinned_versions=config.pinned_versions,
                memory_budget=config.memory_budget,
            ),
            node_id,
            warmed=self.stall.record,  # a slow model is not a stalled one
        )
        self._infer_subscriptions: dict[str, list[Subscription]] = {}
        """Per served model, its queue-group subscriptions; empty while stalled."""
        self._membership = asyncio.Lock()
        """Held while the infer subscriptions change: installs, unloads, leaving when stalled."""
        self.registry: Registry | None = None
        self.view: RegistryView | None = None
        self.reconciler: Reconciler | None = None
        self.presence = Presence(
            nc, self.role, node_id, self.heartbeat_load, config.heartbeat_interval_s
        )

    @property
    def served(self) -> Mapping[str, ModelVersions]:
        """The models this host serves (subscribed to), with their loaded versions."""
        return self.models.models

    # -- lifecycle -------------------------------------------------------------

    async def on_start(self) -> None:
        self.registry, _ = await Registry.open(
            self.nc.jetstream(), replicas=self.config.registry_replicas
        )
        await open_event_history(self.nc.jetstream(), self.config.registry_replicas)
        self.view = RegistryView(self.registry)
        await self.models.start()
        self.reconciler = Reconciler(
            self.view,
            self.models,
            Room(self.models, surplus=self._surplus, on_evicted=self._on_evicted),
            wanted=lambda name: self.serves(name) and not self.state.winding_down,
            on_installed=self._on_installed,
            on_removed=self._on_removed,
        )
        self.view.add_listener(self.reconciler.on_change)
        await self.subscribe(subjects.echo(), subjects.MODELHOST_QUEUE, cb=self._on_echo)
        for subject in (
            [subjects.place_any()]
            if self.config.models is None
            else [subjects.place(name) for name in self.config.models]
        ):
            await self.subscribe(subject, subjects.MODELHOST_QUEUE, cb=self._on_place)
        await self.view.start()
        # The initial state arrived through the listener; wait for those loads.
        await self.settle()
        await self.presence.start()
        self._stall_watch = asyncio.create_task(
            self.stall.watch(self._on_stall_change), name="stall-watch"
        )

    async def settle(self) -> None:
        """Wait until every registry change seen so far has been acted on."""
        if self.reconciler is not None:
            await self.reconciler.settle()

    async def on_stop(self) -> None:
        if self._stall_watch is not None:
            self._stall_watch.cancel()
            await asyncio.gather(self._stall_watch, return_exceptions=True)
        await self.presence.stop()
        if self.view is not None:
            await self.view.stop()
        if self.reconciler is not None:
            await self.reconciler.stop(LOAD_WAIT_ON_STOP_S)
        self.models.close()

    def heartbeat_load(self) -> NodeLoad:
        """What this host's heartbeat says: versions loaded, requests in flight and queued, stats."""
        counters = {
            **self.stats.to_dict(),
            "queued": self.tasks.queued,
            "stalled": int(self.stall.stalled),
            "stalls": self.stall.stalls,
            "memory_budget_bytes": self.models.memory.budget,
            "memory_used_bytes": self.models.used(),
            "evictions": self.models.memory.evictions,
        }
        return NodeLoad(
            in_flight=self.stats.in_flight,
            models=self.models.loaded(),
            counters=counters,
            latency=summary(merged(v["latency"] for v in counters["models"].values())),
        )

    def serves(self, name: str) -> bool:
        return self.config.models is None or name in self.config.models

    # -- what the registry changes ---------------------------------------------

    async def _fetch(self, name: str, version: int) -> bytes:
        assert self.registry is not None
        return await read_model(
            self.registry, name, version, still_wanted=lambda: not self.state.winding_down
        )

    async def _on_installed(self, name: str, version: int, new: bool) -> None:
        """A default was installed: subscribe if the model is new here, and say so."""
        if new:
            async with self._membership:
                # Not while stalled (it subscribes when it recovers), nor twice if a
                # recovery got here first.
                if not self.stall.stalled and not self._infer_subscriptions.get(name):
                    self._infer_subscriptions[name] = await self._subscribe_model(name)
        log.info("%s serves %s:%s (default)", self.node_id, name, version)
        await self._publish_event(ModelEventKind.LOADED, name, version)

    async def _subscribe_model(self, name: str) -> list[Subscription]:
        """Join the queue group of the model's default and pinned versions."""
        return [
            await self.subscribe(subjects.infer(name), subjects.MODELHOST_QUEUE, cb=self._on_infer),
            await self.subscribe(
                subjects.infer_pinned_versions(name), subjects.MODELHOST_QUEUE, cb=self._on_infer
            ),
        ]

    async def _on_removed(self, name: str) -> None:
        await self._leave(name)
        log.info("%s no longer serves %s", self.node_id, name)
        await self._publish_event(ModelEventKind.UNLOADED, name, None)

    async def _on_evicted(self, name: str, reason: str) -> None:
        """About to be given up for room: leave its queue groups first, then say so."""
        await self._leave(name)
        await self._publish_event(ModelEventKind.EVICTED, name, None, reason)

    async def _leave(self, name: str) -> None:
        async with self._membership:
            for sub in self._infer_subscriptions.pop(name, []):
                await self.unsubscribe(sub)

    def _surplus(self, name: str) -> bool:
        """Whether evicting `name` leaves the pool with its min_replicas, as far as we can tell.

        A host does not yet follow what the others hold, so only a model that asks
        for no replica (min_replicas 0), or that the registry no longer has, is surplus.
        """
        record = self.view.records.get(name) if self.view is not None else None
        return record is None or record.settings.min_replicas == 0

    async def runtime_for(self, name: str, version: int | None) -> ModelRuntime:
        """The loaded session for a request; loads a pinned version on first use."""
        runtime = self.models.find(name, version)
        if runtime is not None:
            return runtime
        assert self.view is not None and version is not None
        return await self.models.load_pinned(name, await self.view.get(name), version)

    # -- serving ---------------------------------------------------------------

    async def _on_infer(self, msg: Msg) -> None:
        """Admit a request in flight or to the queue, else refuse it at once.

        Decided before anything is decoded: under overload a refusal costs one
        reply, and what waits is the raw message, never a task or its tensors.
        A probe (no work) is never refused.
        """
        if self.tasks.offer(self._serve_infer, msg, "infer"):
            return
        if _is_probe(msg):
            self.tasks.start(self._serve_infer(msg), "probe")
            return
        self.stats.refused += 1
        await self._reply(msg, self._busy)

    async def _serve_infer(self, msg: Msg) -> None:
        arrived = time.perf_counter()
        deadline = deadline_ms(msg.headers)  # a probe's, or an older client's
        if _past(deadline):
            self.stats.expired += 1
            return  # the caller has given up: no answer is wanted
        self.stats.in_flight += 1
        name, version = "", None
        try:
            name, version = _infer_target(msg.subject)
            if _is_probe(msg):
                runtime = await self.runtime_for(name, version)
                reply = pack(
                    InferResponse(
                        model=name, version=runtime.version, node=self.node_id, outputs=()
                    )
                )
                await self._reply(msg, reply)
                return
            # A request is parsed, never raised: its own "error" field means nothing.
            request = InferRequest.from_dict(unpack_map(msg.data))
            if request.deadline_ms is not None:
                deadline = request.deadline_ms
                if _past(deadline):
                    self.stats.expired += 1
                    return  # the caller has given up: no answer is wanted
            runtime = await self.runtime_for(name, version)
            version = runtime.version
            # Validated here, before it can join a batch: a bad request fails alone.
            feeds = runtime.prepare(request.inputs)
            names = runtime.output_list(request.outputs)
            try:
                with self.stall.run():
                    computed = await self.models.compute(
                        runtime, feeds, names, arrived=arrived, deadline_ms=deadline
                    )
            except RequestExpired:
                self.stats.expired += 1
                return  # dropped in a batch's queue: the caller has given up
            reply = pack(
                InferResponse(
                    model=name,
                    version=runtime.version,
                    node=self.node_id,
                    outputs=computed.outputs,
                    id=request.id,
                )
            )
            check_payload(self.nc, reply, "the answer", "ask for fewer outputs or a smaller batch")
            await self._reply(msg, reply)
            self.stats.succeeded(
                name,
                runtime.version,
                latency_s=time.perf_counter() - arrived,
                queue_s=computed.started - arrived,
                compute_s=computed.compute_s,
                batch_size=computed.batch_size,
                rows=computed.rows,
            )
            return
        except MLBuffetError as exc:
            reply = pack_error(exc)
        except Exception:
            log.exception("inference on %s failed", msg.subject)
            reply = pack_error(InternalError("internal error"))
        finally:
            self.stats.in_flight -= 1
        await self._reply(msg, reply)
        self.stats.failed(name, version, latency_s=time.perf_counter() - arrived)

    # -- stepping aside while stalled (stall.py) ---------------------------------

    async def _on_stall_change(self, change: Change) -> None:
        if not self.running:
            return  # a drain owns the subscriptions now
        if change is Change.STALLED:
            log.warning(
                "%s %s; leaving the queue groups until a run finishes",
                self.node_id,
                self.stall.reason(),
            )
            # What it holds stays: its callers hedge it, as they would a dead host's. (A 503
            # would count as an answer, and may end a request that a later copy would save.)
            async with self._membership:
                for name, subs in list(self._infer_subscriptions.items()):
                    self._infer_subscriptions[name] = []
                    for sub in subs:
                        await self.unsubscribe(sub)
        else:
            log.warning("%s finished a run again; rejoining the queue groups", self.node_id)
            async with self._membership:
                # A snapshot: the reconciler may remove a model meanwhile (then its
                # _on_removed, waiting for this lock, drops what we add here).
                for name in list(self.served):
                    if name in self.served and not self._infer_subscriptions.get(name):
                        self._infer_subscriptions[name] = await self._subscribe_model(name)

    # -- placing a model no host holds ---------------------------------------------

    async def _on_place(self, msg: Msg) -> None:
        """A caller met no responders for a model: load it here (a load may take seconds)."""
        self.tasks.start(self._serve_place(msg), "place")

    async def _serve_place(self, msg: Msg) -> None:
        name = ""
        try:
            try:
                name = subjects.parse_place(msg.subject)
            except ValueError as exc:
                raise BadRequestError(str(exc)) from None
            if self.reconciler is None or self.stall.stalled:
                raise ModelNotReadyError(f"modelhost {self.node_id} cannot load models now")
            version, loaded = await self.reconciler.place(name)
            reply = pack(PlaceReply(model=name, version=version, node=self.node_id, loaded=loaded))
        except ModelTooLargeError as exc:
            await self._publish_event(ModelEventKind.REFUSED, name, None, exc.message)
            reply = pack_error(exc)
        except MLBuffetError as exc:
            reply = pack_error(exc)
        except Exception:
            log.exception("placing %s failed", name or msg.subject)
            reply = pack_error(InternalError("internal error"))
        await self._reply(msg, reply)

    async def _on_echo(self, msg: Msg) -> None:
        try:
            request = EchoRequest.from_dict(unpack_map(msg.data))
            reply = pack(EchoReply(data=request.data, node=self.node_id))
            check_payload(self.nc, reply, "the echo", "send a smaller item")
        except MLBuffetError as exc:
            reply = pack_error(exc)
        await self._reply(msg, reply)

    async def _reply(self, msg: Msg, payload: bytes) -> None:
        if not msg.reply:
            return
        try:
            # Not msg.respond: it would send the request's headers back with the reply.
            await self.nc.publish(msg.reply, payload)
        except Exception:
            log.warning("could not answer on %s", msg.subject, exc_info=True)

    async def _publish_event(
        self, event: ModelEventKind, name: str, version: int | None, reason: str | None = None
    ) -> None:
        await publish_model_event(self.nc, self.node_id, event, name, version, reason)


def _infer_target(subject: str) -> tuple[str, int | None]:
    """(model, version) of the subject a request came on; BadRequestError if it is not one."""
    try:
        return subjects.parse_infer(subject)
    except ValueError as exc:
        raise BadRequestError(str(exc)) from None


def _past(deadline_ms: int | None) -> bool:
    return deadline_ms is not None and deadline_ms <= time.time() * 1000


def _is_probe(msg: Msg) -> bool:
    return bool((msg.headers or {}).get(Header.PROBE.value))
