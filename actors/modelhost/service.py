"""The modelhost actor: serves inference for its models from the registry.

For each model it serves, the host subscribes to `mlbuffet.infer.<model>`
(the default version) and `mlbuffet.infer.<model>.*` (pinned versions) in the
`modelhost` queue group, so every host of a model competes for its requests.
It subscribes only once the default version is loaded and warmed, and swaps a
new default in only once that one is loaded and warmed, so no request ever
reaches a host that cannot answer it.
"""

from __future__ import annotations

import asyncio
import logging
import os
import time
import weakref
from collections import OrderedDict
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field

from nats.aio.client import Client
from nats.aio.msg import Msg
from nats.aio.subscription import Subscription

from actors.base import Actor
from actors.modelhost.batching import Batcher, Computed, RequestExpired
from actors.modelhost.config import ModelhostConfig
from actors.modelhost.loading import read_model
from actors.modelhost.runtime import Feeds, ModelRuntime, RuntimeSettings, to_output
from actors.modelhost.stall import Change, StallWatch
from actors.modelhost.stats import HostStats
from mlbuffet.observe.heartbeat import NodeLoad
from mlbuffet.observe.histograms import merged, summary
from mlbuffet.observe.presence import Presence
from mlbuffet.protocol import subjects
from mlbuffet.protocol.cluster import LoadedModel
from mlbuffet.protocol.errors import (
    BadRequestError,
    InternalError,
    MLBuffetError,
    ModelNotFoundError,
    OverloadedError,
    PayloadTooLargeError,
)
from mlbuffet.protocol.events import ModelEvent
from mlbuffet.protocol.headers import Header
from mlbuffet.protocol.inference import EchoReply, EchoRequest, InferRequest, InferResponse
from mlbuffet.protocol.records import ModelRecord, ModelSettings, VersionRecord
from mlbuffet.protocol.wire import pack, pack_error, unpack_map
from mlbuffet.registry import Registry, RegistryView

log = logging.getLogger(__name__)

LOAD_WAIT_ON_STOP_S = 10.0
RECONCILE_ROUNDS = 8
"""Loads one reconcile tries while the default keeps changing; the next change brings another."""


@dataclass
class ServedModel:
    """What this host serves of one model."""

    default: ModelRuntime
    subscriptions: list[Subscription] = field(default_factory=list)
    pinned: OrderedDict[int, ModelRuntime] = field(default_factory=OrderedDict)
    """Non-default versions loaded on demand, least recently used first."""


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
        self.served: dict[str, ServedModel] = {}
        self._locks: dict[str, asyncio.Lock] = {}
        self._loading: dict[tuple[str, int, ModelSettings], asyncio.Future[ModelRuntime]] = {}
        self._batchers: weakref.WeakKeyDictionary[ModelRuntime, Batcher] = (
            weakref.WeakKeyDictionary()
        )
        self._reconciles: set[asyncio.Task[None]] = set()
        self._compute = ThreadPoolExecutor(config.workers, thread_name_prefix="onnxruntime")
        self._loader = ThreadPoolExecutor(1, thread_name_prefix="model-loader")
        self.registry: Registry | None = None
        self.view: RegistryView | None = None
        self.presence = Presence(
            nc, self.role, node_id, self.heartbeat_load, config.heartbeat_interval_s
        )
        self.stall = StallWatch(config.stall_after_s)
        self._stall_watch: asyncio.Task[None] | None = None
        self._membership = asyncio.Lock()
        """Held while the infer subscriptions change: installs, unloads, leaving when stalled."""

    # -- lifecycle -------------------------------------------------------------

    async def on_start(self) -> None:
        self.registry, _ = await Registry.open(
            self.nc.jetstream(), replicas=self.config.registry_replicas
        )
        self.view = RegistryView(self.registry)
        self.view.add_listener(self._on_registry_change)
        await self.subscribe(subjects.echo(), subjects.MODELHOST_QUEUE, cb=self._on_echo)
        await self.view.start()
        # The initial state arrived through the listener; wait for those loads.
        await self.settle()
        await self.presence.start()
        self._stall_watch = asyncio.create_task(
            self.stall.watch(self._on_stall_change), name="stall-watch"
        )

    async def settle(self) -> None:
        """Wait until every registry change seen so far has been acted on."""
        while self._reconciles:
            await asyncio.gather(*set(self._reconciles), return_exceptions=True)

    async def on_stop(self) -> None:
        if self._stall_watch is not None:
            self._stall_watch.cancel()
            await asyncio.gather(self._stall_watch, return_exceptions=True)
        await self.presence.stop()
        if self.view is not None:
            await self.view.stop()
        # A load cut off mid-download would leave nats-py's chunk subscription
        # undrained (and the connection's drain waiting for it): let loads finish.
        if self._reconciles:
            await asyncio.wait(set(self._reconciles), timeout=LOAD_WAIT_ON_STOP_S)
        for task in set(self._reconciles):
            task.cancel()
        await asyncio.gather(*self._reconciles, return_exceptions=True)
        self.served.clear()
        self._compute.shutdown(wait=False, cancel_futures=True)
        self._loader.shutdown(wait=False, cancel_futures=True)

    def heartbeat_load(self) -> NodeLoad:
        """What this host's heartbeat says: versions loaded, requests in flight and queued, stats."""
        counters = {
            **self.stats.to_dict(),
            "queued": self.tasks.queued,
            "stalled": int(self.stall.stalled),
            "stalls": self.stall.stalls,
        }
        loaded = [
            LoadedModel(name, version)
            for name, served in self.served.items()
            for version in sorted({served.default.version, *served.pinned})
        ]
        return NodeLoad(
            in_flight=self.stats.in_flight,
            models=tuple(sorted(loaded, key=lambda m: (m.model, m.version))),
            counters=counters,
            latency=summary(merged(v["latency"] for v in counters["models"].values())),
        )

    def serves(self, name: str) -> bool:
        return self.config.models is None or name in self.config.models

    # -- following the registry ------------------------------------------------

    def _on_registry_change(self, name: str, record: ModelRecord | None) -> None:
        if not self.serves(name) or self._state in ("draining", "stopped"):
            return
        task = asyncio.create_task(self._reconcile(name), name=f"reconcile-{name}")
        self._reconciles.add(task)
        task.add_done_callback(self._reconciles.discard)

    async def _reconcile(self, name: str) -> None:
        """Bring what this host serves of `name` in line with the registry's current record."""
        lock = self._locks.setdefault(name, asyncio.Lock())
        async with lock:
            # A load takes time and the record may change meanwhile: install only
            # what is still the default once loaded, else go round again.
            for _ in range(RECONCILE_ROUNDS):
                assert self.view is not None
                record = self.view.records.get(name)
                served = self.served.get(name)
                if record is None or not record.serving:  # unloaded: as if it were gone
                    if served is not None:
                        await self._stop_serving(name, served)
                    return
                if served is not None:
                    self._prune_pinned(served, record)
                    if _same(served.default, record.default, record.settings):
                        return
                try:
                    runtime = await self._load(name, record.default, record.settings)
                except Exception as exc:
                    message = exc.message if isinstance(exc, MLBuffetError) else repr(exc)
                    log.error("cannot load %s:%s: %s", name, record.default_version, message)
                    return
                latest = self.view.records.get(name)
                if latest is None or not _same(runtime, latest.default, latest.settings):
                    continue
                await self._install(name, runtime, latest)
                return

    def _prune_pinned(self, served: ServedModel, record: ModelRecord) -> None:
        """Forget pinned versions that were deleted or replaced."""
        for version, runtime in list(served.pinned.items()):
            current = record.versions.get(version)
            if current is None or not _same(runtime, current, record.settings):
                del served.pinned[version]

    async def _install(self, name: str, runtime: ModelRuntime, record: ModelRecord) -> None:
        """Make a loaded, warmed `runtime` the default; subscribe if the model is new here."""
        served = self.served.get(name)
        if served is None:
            async with self._membership:
                served = ServedModel(default=runtime)
                self.served[name] = served
                if not self.stall.stalled:  # else it subscribes when it recovers
                    served.subscriptions = await self._subscribe_model(name)
        else:
            previous = served.default
            served.default = runtime  # requests already running keep the old session
            if self.config.pinned_versions and previous.version in record.versions:
                self._keep_pinned(served, previous)
            served.pinned.pop(runtime.version, None)
        log.info("%s serves %s:%s (default)", self.node_id, name, runtime.version)
        await self._publish_event(ModelEvent.LOADED, name, runtime.version)

    async def _subscribe_model(self, name: str) -> list[Subscription]:
        """Join the queue group of the model's default and pinned versions."""
        return [
            await self.subscribe(subjects.infer(name), subjects.MODELHOST_QUEUE, cb=self._on_infer),
            await self.subscribe(
                subjects.infer_pinned_versions(name), subjects.MODELHOST_QUEUE, cb=self._on_infer
            ),
        ]

    async def _stop_serving(self, name: str, served: ServedModel) -> None:
        async with self._membership:
            del self.served[name]
            for sub in served.subscriptions:
                await self.unsubscribe(sub)
        log.info("%s no longer serves %s", self.node_id, name)
        await self._publish_event(ModelEvent.UNLOADED, name, None)

    def runtime_settings(self, settings: ModelSettings) -> RuntimeSettings:
        """Threads and sessions for a model: its own settings, else this host's defaults."""
        return RuntimeSettings.for_model(
            settings,
            default_threads=self.config.intra_op_threads,
            cores=min(self.config.workers, os.cpu_count() or 1),
        )

    async def _load(
        self, name: str, record: VersionRecord, settings: ModelSettings
    ) -> ModelRuntime:
        """Download, load and warm one version; concurrent asks for the same one share the work."""
        key = (name, record.version, settings)
        pending = self._loading.get(key)
        if pending is not None:
            return await asyncio.shield(pending)
        future: asyncio.Future[ModelRuntime] = asyncio.get_running_loop().create_future()
        self._loading[key] = future
        try:
            assert self.registry is not None
            started = time.perf_counter()
            data = await read_model(
                self.registry,
                name,
                record.version,
                still_wanted=lambda: self._state not in ("draining", "stopped"),
            )
            loop = asyncio.get_running_loop()
            runtime = await loop.run_in_executor(
                self._loader,
                ModelRuntime.load,
                name,
                record,
                data,
                self.runtime_settings(settings),
                settings,
            )
            warm_started = time.perf_counter()
            await loop.run_in_executor(self._loader, runtime.warm)
            self.stall.record(time.perf_counter() - warm_started)  # a slow model is not stalled
            if settings.batching and runtime.batchable:
                self._batchers[runtime] = Batcher(runtime, self._compute)
            log.info(
                "%s loaded %s:%s in %.0f ms",
                self.node_id,
                name,
                record.version,
                (time.perf_counter() - started) * 1000,
            )
            future.set_result(runtime)
            return runtime
        except BaseException as exc:
            future.set_exception(exc)
            future.exception()  # retrieved: waiters get it, nobody else must log it
            raise
        finally:
            del self._loading[key]

    def _keep_pinned(self, served: ServedModel, runtime: ModelRuntime) -> None:
        served.pinned[runtime.version] = runtime
        served.pinned.move_to_end(runtime.version)
        while len(served.pinned) > self.config.pinned_versions:
            served.pinned.popitem(last=False)

    async def runtime_for(self, name: str, version: int | None) -> ModelRuntime:
        """The loaded session for a request; loads a pinned version on first use."""
        served = self.served.get(name)
        if served is None:
            raise ModelNotFoundError(f"model {name!r} is not served here")
        if version is None or version == served.default.version:
            return served.default
        runtime = served.pinned.get(version)
        if runtime is not None:
            served.pinned.move_to_end(version)
            return runtime
        assert self.view is not None
        record = await self.view.get(name)
        runtime = await self._load(name, record.version(version), record.settings)
        if self.config.pinned_versions:
            self._keep_pinned(served, runtime)
        return runtime

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
        if _expired(msg):
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
            runtime = await self.runtime_for(name, version)
            version = runtime.version
            # Validated here, before it can join a batch: a bad request fails alone.
            feeds = runtime.prepare(request.inputs)
            names = runtime.output_list(request.outputs)
            batcher = self._batchers.get(runtime)
            with self.stall.run():
                if batcher is None:
                    # A run of a few microseconds costs less than the hop to a thread and back.
                    computed = (
                        _timed_run(runtime, feeds, names, inline=True)
                        if runtime.cheap(feeds)
                        else None
                    )
                    if computed is None:
                        computed = await asyncio.get_running_loop().run_in_executor(
                            self._compute, _threaded_run, runtime, feeds, names
                        )
                else:
                    try:
                        computed = await batcher.infer(
                            feeds, names, arrived=arrived, deadline_ms=_deadline_ms(msg)
                        )
                    except RequestExpired:
                        self.stats.expired += 1
                        return  # dropped in the queue: the caller has given up
            reply = pack(
                InferResponse(
                    model=name,
                    version=runtime.version,
                    node=self.node_id,
                    outputs=computed.outputs,
                    id=request.id,
                )
            )
            if len(reply) > self.nc.max_payload:
                raise PayloadTooLargeError(
                    f"the answer is {len(reply)} bytes, over the NATS limit of {self.nc.max_payload}; "
                    "ask for fewer outputs or a smaller batch"
                )
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
                for served in self.served.values():
                    subs, served.subscriptions = served.subscriptions, []
                    for sub in subs:
                        await self.unsubscribe(sub)
        else:
            log.warning("%s finished a run again; rejoining the queue groups", self.node_id)
            async with self._membership:
                for name, served in self.served.items():
                    if not served.subscriptions:
                        served.subscriptions = await self._subscribe_model(name)

    async def _on_echo(self, msg: Msg) -> None:
        try:
            request = EchoRequest.from_dict(unpack_map(msg.data))
            reply = pack(EchoReply(data=request.data, node=self.node_id))
            if len(reply) > self.nc.max_payload:
                raise PayloadTooLargeError(
                    f"the echo is {len(reply)} bytes, over the NATS limit of {self.nc.max_payload}"
                )
        except MLBuffetError as exc:
            reply = pack_error(exc)
        await self._reply(msg, reply)

    async def _reply(self, msg: Msg, payload: bytes) -> None:
        if not msg.reply:
            return
        try:
            await msg.respond(payload)
        except Exception:
            log.warning("could not answer on %s", msg.subject, exc_info=True)

    async def _publish_event(self, event: str, name: str, version: int | None) -> None:
        try:
            await self.nc.publish(
                subjects.model_events(name),
                pack(
                    ModelEvent(
                        event=event, model=name, version=version, node=self.node_id, at=time.time()
                    )
                ),
            )
        except Exception:
            log.debug("could not publish %s event of %s", event, name, exc_info=True)


def _same(runtime: ModelRuntime, record: VersionRecord, settings: ModelSettings) -> bool:
    """Whether `runtime` is what the registry asks for: the same file with the same settings."""
    return (runtime.version, runtime.sha256, runtime.settings) == (
        record.version,
        record.sha256,
        settings,
    )


def _infer_target(subject: str) -> tuple[str, int | None]:
    """(model, version) of the subject a request came on; BadRequestError if it is not one."""
    try:
        return subjects.parse_infer(subject)
    except ValueError as exc:
        raise BadRequestError(str(exc)) from None


def _timed_run(
    runtime: ModelRuntime, feeds: Feeds, names: tuple[str, ...], inline: bool = False
) -> Computed | None:
    """Run in a compute thread (or `inline` on the loop: None if no session is free then)."""
    started = time.perf_counter()
    if inline:
        values = runtime.try_run_values(feeds, names)
        if values is None:
            return None
    else:
        values = runtime.run_values(feeds, names)
    compute_s = time.perf_counter() - started
    outputs = tuple(to_output(name, value) for name, value in zip(names, values, strict=True))
    rows = _rows(feeds)
    return Computed(outputs, started, compute_s, rows, rows)


def _threaded_run(runtime: ModelRuntime, feeds: Feeds, names: tuple[str, ...]) -> Computed:
    computed = _timed_run(runtime, feeds, names)
    assert computed is not None  # only an inline run gives up
    return computed


def _rows(feeds: Feeds) -> int:
    """Rows of an unbatched run, for the batch-size histogram (1 for rank-0 inputs)."""
    first = next(iter(feeds.values()), None)
    return int(first.shape[0]) if first is not None and first.ndim else 1


def _is_probe(msg: Msg) -> bool:
    return bool((msg.headers or {}).get(Header.PROBE.value))


def _deadline_ms(msg: Msg) -> int | None:
    raw = (msg.headers or {}).get(Header.DEADLINE.value)
    if not raw:
        return None
    try:
        return int(raw)
    except ValueError:
        return None


def _expired(msg: Msg) -> bool:
    deadline = _deadline_ms(msg)
    return deadline is not None and deadline <= time.time() * 1000
