"""Following the registry: what a modelhost serves is brought in line with each change.

A change of a model's record (new default, new settings, unloaded, deleted)
starts a reconcile of that model, one at a time per model. A new default is
loaded and warmed first and installed only if it is still the default by
then, so no request ever reaches a version that cannot answer it. What
serving means on the wire (subscriptions, events) is the service's: it is
told through `on_installed` and `on_removed`.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable

from actors.modelhost.model_set import ModelSet, matches
from mlbuffet.protocol.errors import MLBuffetError
from mlbuffet.protocol.records import ModelRecord
from mlbuffet.registry import RegistryView

log = logging.getLogger(__name__)

RECONCILE_ROUNDS = 8
"""Loads one reconcile tries while the default keeps changing; the next change brings another."""

Installed = Callable[[str, int, bool], Awaitable[None]]
"""Told (model, default version, whether the model is new here) once a default is installed."""
Removed = Callable[[str], Awaitable[None]]
"""Told (model) once a model is no longer served."""


class Reconciler:
    """Keeps a ModelSet in line with a RegistryView, one model at a time."""

    def __init__(
        self,
        view: RegistryView,
        models: ModelSet,
        *,
        wanted: Callable[[str], bool],
        on_installed: Installed,
        on_removed: Removed,
    ) -> None:
        self.view = view
        self.models = models
        self._wanted = wanted
        self._on_installed = on_installed
        self._on_removed = on_removed
        self._locks: dict[str, asyncio.Lock] = {}
        self._tasks: set[asyncio.Task[None]] = set()

    def on_change(self, name: str, record: ModelRecord | None) -> None:
        """A RegistryView listener: reconcile `name` soon, if this host wants it now."""
        if not self._wanted(name):
            return
        task = asyncio.create_task(self._reconcile(name), name=f"reconcile-{name}")
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def settle(self) -> None:
        """Wait until every registry change seen so far has been acted on."""
        while self._tasks:
            await asyncio.gather(*set(self._tasks), return_exceptions=True)

    async def stop(self, wait_s: float) -> None:
        """Let reconciles under way finish for up to `wait_s`, then cancel the rest.

        A load cut off mid-download would leave nats-py's chunk subscription
        undrained (and the connection's drain waiting for it): loads get time.
        """
        if self._tasks:
            await asyncio.wait(set(self._tasks), timeout=wait_s)
        for task in set(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)

    async def _reconcile(self, name: str) -> None:
        """Bring what this host serves of `name` in line with the registry's current record."""
        async with self._locks.setdefault(name, asyncio.Lock()):
            # A load takes time and the record may change meanwhile: install only
            # what is still the default once loaded, else go round again.
            for _ in range(RECONCILE_ROUNDS):
                record = self.view.records.get(name)
                if record is None or not record.serving:  # unloaded: as if it were gone
                    if self.models.remove(name):
                        await self._on_removed(name)
                    return
                self.models.prune_pinned(name, record)
                if self.models.is_current(name, record):
                    return
                try:
                    runtime = await self.models.load(name, record.default, record.settings)
                except Exception as exc:
                    message = exc.message if isinstance(exc, MLBuffetError) else repr(exc)
                    log.error("cannot load %s:%s: %s", name, record.default_version, message)
                    return
                latest = self.view.records.get(name)
                if latest is None or not matches(runtime, latest.default, latest.settings):
                    continue
                new = self.models.install(name, runtime, latest)
                await self._on_installed(name, runtime.version, new)
                return
