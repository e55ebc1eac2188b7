"""A live, local copy of the registry's records, kept current by a KV watch.

Gateways read signatures and defaults from it on every request without a
round trip; modelhosts learn from it that a model was uploaded, got a new
default or was deleted. Listeners run in the order changes happened.
"""

from __future__ import annotations

import asyncio
import inspect
import logging
from collections.abc import Awaitable, Callable

from nats.js.kv import KV_DEL, KV_PURGE

from mlbuffet.protocol.errors import InternalError
from mlbuffet.protocol.records import ModelRecord
from mlbuffet.registry.buckets import watch_from_start
from mlbuffet.registry.store import Registry

log = logging.getLogger(__name__)

Listener = Callable[[str, ModelRecord | None], Awaitable[None] | None]
"""Called with a model name and its new record (None: the model is gone)."""


class RegistryView:
    def __init__(self, registry: Registry) -> None:
        self.registry = registry
        self._records: dict[str, ModelRecord] = {}
        self._revisions: dict[str, int] = {}
        self._listeners: list[Listener] = []
        self._task: asyncio.Task[None] | None = None
        self._watcher: object | None = None
        self._seen = 0
        """Highest KV stream sequence applied: what sync() waits for."""
        self._progress = asyncio.Condition()

    @property
    def records(self) -> dict[str, ModelRecord]:
        """Every model with at least one version, by name (read-only by convention)."""
        return self._records

    def add_listener(self, listener: Listener) -> None:
        self._listeners.append(listener)

    async def start(self) -> None:
        """Load every record and keep watching; returns once the initial state is in."""
        watcher = await watch_from_start(self.registry.kv, self._apply)
        self._watcher = watcher
        self._task = asyncio.create_task(self._follow(watcher), name="registry-view")

    async def _follow(self, watcher: object) -> None:
        async for entry in watcher:  # type: ignore[attr-defined]
            if entry is None:
                continue
            try:
                await self._apply(entry)
            except Exception:
                log.exception("registry change of %s could not be applied", entry.key)

    async def _apply(self, entry: object) -> None:
        name: str = entry.key  # type: ignore[attr-defined]
        revision: int = entry.revision  # type: ignore[attr-defined]
        try:
            await self._apply_change(name, revision, entry)
        finally:
            async with self._progress:
                self._seen = max(self._seen, revision)
                self._progress.notify_all()

    async def _apply_change(self, name: str, revision: int, entry: object) -> None:
        if revision <= self._revisions.get(name, 0):
            return
        self._revisions[name] = revision
        record: ModelRecord | None = None
        if entry.operation not in (KV_DEL, KV_PURGE) and entry.value:  # type: ignore[attr-defined]
            try:
                record = ModelRecord.from_json(entry.value)  # type: ignore[attr-defined]
            except InternalError as exc:
                # One unreadable record must not stop a gateway or modelhost from
                # starting, nor take down what was served from its last good version.
                log.error("registry record %r is unreadable, ignored: %s", name, exc.message)
                return
            if not record.versions:
                record = None
        await self._set(name, record)

    async def _set(self, name: str, record: ModelRecord | None) -> None:
        previous = self._records.get(name)
        if record is None:
            self._records.pop(name, None)
            if previous is None:
                return
        else:
            self._records[name] = record
        for listener in self._listeners:
            result = listener(name, record)
            if inspect.isawaitable(result):
                await result

    async def sync(self, timeout_s: float = 5.0) -> None:
        """Wait until every change committed so far (by anyone) is in this view.

        A process calls this after its own write so that its next read sees it.
        """
        status = await self.registry.kv.status()
        target = status.stream_info.state.last_seq
        async with self._progress:
            await asyncio.wait_for(self._progress.wait_for(lambda: self._seen >= target), timeout_s)

    async def get(self, name: str) -> ModelRecord:
        """The record of `name`; asks the registry itself if the watch has not brought it yet."""
        record = self._records.get(name)
        if record is None:
            record = await self.registry.get(name)
        return record

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)
            self._task = None
        if self._watcher is not None:
            try:
                await self._watcher.stop()  # type: ignore[attr-defined]
            except Exception:
                log.debug("watcher stop failed", exc_info=True)
            self._watcher = None

    async def __aenter__(self) -> RegistryView:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()
