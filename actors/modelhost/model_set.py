"""The model versions one modelhost has loaded, and how a request runs on them.

No NATS here: the service decides what to serve and answers requests; this
set loads and warms versions (the file's bytes come from the `fetch` it is
given), swaps a new default in, keeps a bounded set of pinned versions (least
recently used evicted first), forgets what is removed, and runs requests on
the loaded sessions: on the event loop when the run is cheap, in a batch when
the model batches, else in a compute thread. What each model cost to load is
measured and kept within the host's memory budget (memory.py); the set says
which models to give up for room, the reconciler gives them up.
"""

from __future__ import annotations

import asyncio
import logging
import os
import time
import weakref
from collections import OrderedDict
from collections.abc import Awaitable, Callable, Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from functools import partial

from actors.modelhost.batching import Batcher
from actors.modelhost.memory import MemoryBudget, measure, release_freed_memory
from actors.modelhost.runtime import (
    Computed,
    Feeds,
    ModelRuntime,
    RuntimeSettings,
    start_onnxruntime,
)
from mlbuffet.protocol.cluster import LoadedModel
from mlbuffet.protocol.errors import ModelNotFoundError, ModelNotReadyError
from mlbuffet.protocol.records import ModelRecord, ModelSettings, VersionRecord
from mlbuffet.protocol.sizes import format_size

log = logging.getLogger(__name__)

FetchModel = Callable[[str, int], Awaitable[bytes]]
"""The bytes of model `name`, version `version` (the registry's file)."""


@dataclass
class ModelVersions:
    """The loaded versions of one model."""

    default: ModelRuntime
    pinned: OrderedDict[int, ModelRuntime] = field(default_factory=OrderedDict)
    """Non-default versions loaded on demand, least recently used first."""


@dataclass(frozen=True, slots=True)
class ModelSetLimits:
    workers: int
    """Compute threads for runs too long for the event loop."""
    intra_op_threads: int
    """A model's onnxruntime threads per run unless its settings say otherwise."""
    pinned_versions: int
    """Non-default versions kept loaded per model; 0 loads one for each request that asks."""
    memory_budget: int
    """Bytes the loaded models may take, as measured when each was loaded (memory.py)."""


class ModelSet:
    """Loads, warms, swaps and evicts model versions; runs requests on them."""

    def __init__(
        self,
        fetch: FetchModel,
        limits: ModelSetLimits,
        node_id: str,
        *,
        warmed: Callable[[float], None] = lambda warm_s: None,
    ) -> None:
        """`warmed` is told how long each warm-up run took (seconds)."""
        self._fetch = fetch
        self._warmed = warmed
        self.limits = limits
        self.node_id = node_id
        self._models: dict[str, ModelVersions] = {}
        self._loading: dict[tuple[str, int, ModelSettings], asyncio.Future[ModelRuntime]] = {}
        self._batchers: weakref.WeakKeyDictionary[ModelRuntime, Batcher] = (
            weakref.WeakKeyDictionary()
        )
        self._compute = ThreadPoolExecutor(limits.workers, thread_name_prefix="onnxruntime")
        self._loader = ThreadPoolExecutor(1, thread_name_prefix="model-loader")
        """One thread: loads are measured one at a time (memory.measure)."""
        self.memory = MemoryBudget(limits.memory_budget)

    @property
    def models(self) -> Mapping[str, ModelVersions]:
        """Every model with a default version loaded, by name."""
        return self._models

    def loaded(self) -> tuple[LoadedModel, ...]:
        """Every loaded version, default and pinned, sorted by model and version."""
        loaded = [
            LoadedModel(name, version)
            for name, versions in self._models.items()
            for version in {versions.default.version, *versions.pinned}
        ]
        return tuple(sorted(loaded, key=lambda m: (m.model, m.version)))

    def floor(self, record: VersionRecord, settings: ModelSettings) -> int:
        """The least loading a version can cost: each session holds every weight of its file."""
        return record.size * self.runtime_settings(settings).sessions

    def cost(self, name: str) -> int:
        """Bytes the loaded versions of `name` were measured to take (0 if none is loaded)."""
        versions = self._models.get(name)
        if versions is None:
            return 0
        runtimes = {id(r): r for r in (versions.default, *versions.pinned.values())}
        return sum(r.memory_bytes for r in runtimes.values())

    def costs(self) -> dict[str, int]:
        """Every loaded model's cost."""
        return {name: self.cost(name) for name in self._models}

    def used(self) -> int:
        """Bytes of the budget taken."""
        return sum(self.costs().values())

    async def start(self) -> None:
        """Start onnxruntime before any model is loaded and measured (see start_onnxruntime)."""
        await asyncio.get_running_loop().run_in_executor(self._loader, start_onnxruntime)

    def close(self) -> None:
        """Forget every model and stop the threads; runs under way are not waited for."""
        self._models.clear()
        self._compute.shutdown(wait=False, cancel_futures=True)
        self._loader.shutdown(wait=False, cancel_futures=True)

    # -- loading and installing ------------------------------------------------

    def runtime_settings(self, settings: ModelSettings) -> RuntimeSettings:
        """Threads and sessions for a model: its own settings, else this host's defaults."""
        return RuntimeSettings.for_model(
            settings,
            default_threads=self.limits.intra_op_threads,
            cores=min(self.limits.workers, os.cpu_count() or 1),
        )

    async def load(self, name: str, record: VersionRecord, settings: ModelSettings) -> ModelRuntime:
        """Fetch, load and warm one version; concurrent asks for the same one share the work.

        The version is not installed: the caller decides what it becomes.
        """
        key = (name, record.version, settings.execution())
        pending = self._loading.get(key)
        if pending is not None:
            return await asyncio.shield(pending)
        future: asyncio.Future[ModelRuntime] = asyncio.get_running_loop().create_future()
        self._loading[key] = future
        try:
            started = time.perf_counter()
            # Weights over the whole budget cannot fit loaded: refused before they are read.
            self.memory.check_floor(name, record.size, self.runtime_settings(settings).sessions)
            data = await self._fetch(name, record.version)
            loop = asyncio.get_running_loop()
            build = partial(self._build, name, record, data, settings)
            floor = self.floor(record, settings)
            (runtime, warm_s), cost = await loop.run_in_executor(
                self._loader, measure, build, floor
            )
            del data
            self._warmed(warm_s)
            if cost > self.memory.budget:
                del runtime  # its sessions go, and their memory back to the system
                self._loader.submit(release_freed_memory)
                self.memory.check_measured(name, cost)
            runtime.memory_bytes = cost
            runtime.memory_floor = floor
            if settings.batching and runtime.batchable:
                self._batchers[runtime] = Batcher(runtime, self._compute)
            log.info(
                "%s loaded %s:%s in %.0f ms, %s",
                self.node_id,
                name,
                record.version,
                (time.perf_counter() - started) * 1000,
                format_size(cost),
            )
            future.set_result(runtime)
            return runtime
        except BaseException as exc:
            future.set_exception(exc)
            future.exception()  # retrieved: waiters get it, nobody else must log it
            raise
        finally:
            del self._loading[key]

    def _build(
        self, name: str, record: VersionRecord, data: bytes, settings: ModelSettings
    ) -> tuple[ModelRuntime, float]:
        """Load and warm one version (in the loader thread); the warm-up's seconds."""
        runtime = ModelRuntime.load(name, record, data, self.runtime_settings(settings), settings)
        warm_started = time.perf_counter()
        runtime.warm()
        return runtime, time.perf_counter() - warm_started

    def install(self, name: str, runtime: ModelRuntime, record: ModelRecord) -> bool:
        """Make a loaded, warmed `runtime` the default of `name`; True if `name` is new here.

        A default that is replaced stays loaded as a pinned version while the
        registry still has it, so requests pinned to it need no reload.
        """
        self.memory.loaded(name, runtime.memory_bytes, runtime.memory_floor)
        versions = self._models.get(name)
        if versions is None:
            self._models[name] = ModelVersions(default=runtime)
            return True
        previous = versions.default
        versions.default = runtime  # requests already running keep the old session
        if self.limits.pinned_versions and previous.version in record.versions:
            self._keep_pinned(versions, previous)
        versions.pinned.pop(runtime.version, None)
        return False

    def remove(self, name: str, *, evicted: bool = False) -> bool:
        """Forget every version of `name`; False if none was loaded.

        Its memory goes back to the system once the requests still running on it end.
        """
        self.memory.forget(name, evicted=evicted)
        if self._models.pop(name, None) is None:
            return False
        self._loader.submit(release_freed_memory)
        return True

    def is_current(self, name: str, record: ModelRecord) -> bool:
        """Whether `name`'s default is the one `record` asks for."""
        versions = self._models.get(name)
        return versions is not None and matches(versions.default, record.default, record.settings)

    def prune_pinned(self, name: str, record: ModelRecord) -> None:
        """Forget pinned versions of `name` that were deleted or replaced in `record`."""
        versions = self._models.get(name)
        if versions is None:
            return
        for version, runtime in list(versions.pinned.items()):
            current = record.versions.get(version)
            if current is None or not matches(runtime, current, record.settings):
                del versions.pinned[version]

    def _keep_pinned(self, versions: ModelVersions, runtime: ModelRuntime) -> None:
        versions.pinned[runtime.version] = runtime
        versions.pinned.move_to_end(runtime.version)
        while len(versions.pinned) > self.limits.pinned_versions:
            versions.pinned.popitem(last=False)

    # -- finding and running ---------------------------------------------------

    def find(self, name: str, version: int | None) -> ModelRuntime | None:
        """The loaded session for a request; None if it asks for a pinned version not loaded.

        ModelNotFoundError if no version of `name` is served here.
        """
        versions = self._models.get(name)
        if versions is None:
            if self.memory.was_loaded(name):
                # Evicted while the request waited: another host (or a reload) can take it.
                raise ModelNotReadyError(f"model {name!r} was evicted from this host; retry")
            raise ModelNotFoundError(f"model {name!r} is not served here")
        self.memory.touch(name)
        if version is None or version == versions.default.version:
            return versions.default
        runtime = versions.pinned.get(version)
        if runtime is not None:
            versions.pinned.move_to_end(version)
        return runtime

    async def load_pinned(self, name: str, record: ModelRecord, version: int) -> ModelRuntime:
        """Load a non-default version for a request, kept for the next ones if there is room."""
        runtime = await self.load(name, record.version(version), record.settings)
        versions = self._models.get(name)
        if versions is not None and self.limits.pinned_versions:
            self._keep_pinned(versions, runtime)
        return runtime

    async def compute(
        self,
        runtime: ModelRuntime,
        feeds: Feeds,
        names: tuple[str, ...],
        *,
        arrived: float,
        deadline_ms: int | None,
    ) -> Computed:
        """Run one validated request: batched if its model batches, else alone.

        RequestExpired (batching.py) if its deadline passes while it waits for a batch.
        """
        batcher = self._batchers.get(runtime)
        if batcher is not None:
            return await batcher.infer(feeds, names, arrived=arrived, deadline_ms=deadline_ms)
        # A run of a few microseconds costs less than the hop to a thread and back.
        computed = runtime.compute_inline(feeds, names) if runtime.cheap(feeds) else None
        if computed is None:
            computed = await asyncio.get_running_loop().run_in_executor(
                self._compute, runtime.compute, feeds, names
            )
        return computed


def matches(runtime: ModelRuntime, record: VersionRecord, settings: ModelSettings) -> bool:
    """Whether `runtime` is what the registry asks for: the same file with the same settings.

    Replica settings are not compared: where a model runs does not change how.
    """
    return (runtime.version, runtime.sha256, runtime.settings.execution()) == (
        record.version,
        record.sha256,
        settings.execution(),
    )
