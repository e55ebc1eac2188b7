"""Following the registry: what a modelhost serves is brought in line with each change.

A change of a model's record (new default, new settings, unloaded, deleted)
starts a reconcile of that model, one at a time per model. A new default is
loaded and warmed first and installed only if it is still the default by
then, so no request ever reaches a version that cannot answer it. What
serving means on the wire (subscriptions, events) is the service's: it is
told through `on_installed` and `on_removed`.

Every load first makes room in the host's memory budget (room.py). A model
the registry brings that finds no room without pushing out models requests
use is left unloaded here: its first request places it (`place`), evicting
the least recently used.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable

from actors.modelhost.model_set import ModelSet, matches
from actors.modelhost.room import Room
from mlbuffet.protocol.errors import MLBuffetError, ModelNotFoundError, ModelNotReadyError
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
        room: Room,
        *,
        wanted: Callable[[str], bool],
        on_installed: Installed,
        on_removed: Removed,
    ) -> None:
        self.view = view
        self.models = models
        self.room = room
        self._wanted = wanted
        self._on_installed = on_installed
        self._on_removed = on_removed
        self._locks: dict[str, asyncio.Lock] = {}
        self._tasks: set[asyncio.Task[None]] = set()

    def on_change(self, name: str, record: ModelRecord | None) -> None:
        """A RegistryView listener: reconcile `name` soon, if this host wants it now."""
        if not self._wanted(name):
            return
        task = asyncio.create_task(self._follow(name), name=f"reconcile-{name}")
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

    async def place(self, name: str) -> tuple[int, bool]:
        """Load `name` for a request waiting on it, evicting for room; (version, whether loaded now).

        Raises what the request should hear: ModelNotFoundError, ModelNotReadyError
        (unloaded, or no room), ModelTooLargeError, or the load's own error.
        """
        if not self._wanted(name):
            raise ModelNotReadyError(f"model {name!r} is not served by this host")
        placed = await self._reconcile(name, for_request=True)
        assert placed is not None
        return placed

    async def _follow(self, name: str) -> None:
        """A registry change: reconcile `name`, logging what fails (nobody waits for it)."""
        try:
            await self._reconcile(name, for_request=False)
        except Exception as exc:
            record = self.view.records.get(name)
            version = record.default_version if record else None
            message = exc.message if isinstance(exc, MLBuffetError) else repr(exc)
            log.error("cannot load %s:%s: %s", name, version, message)

    async def _reconcile(self, name: str, *, for_request: bool) -> tuple[int, bool] | None:
        """Bring what this host serves of `name` in line with the registry's current record.

        Returns (default version, whether it was loaded now), or None when a
        registry change found no room for a model new here.
        """
        async with self._locks.setdefault(name, asyncio.Lock()):
            # A load takes time and the record may change meanwhile: install only
            # what is still the default once loaded, else go round again.
            for _ in range(RECONCILE_ROUNDS):
                record = self.view.records.get(name)
                if record is None or not record.serving:  # unloaded: as if it were gone
                    if self.models.remove(name):
                        await self._on_removed(name)
                    if not for_request:
                        return None
                    if record is None:
                        raise ModelNotFoundError(f"model {name!r} does not exist")
                    raise ModelNotReadyError(f"model {name!r} is unloaded (not serving)")
                self.models.prune_pinned(name, record)
                if self.models.is_current(name, record):
                    return record.default_version, False
                # A model held here is kept current whatever it costs; one new here is
                # loaded by a registry change only into room that nobody else needs.
                force = for_request or name in self.models.models
                sessions = self.models.runtime_settings(record.settings).sessions
                if not await self.room.make(name, record.default.size, sessions, force=force):
                    if for_request:
                        raise ModelNotReadyError(
                            f"no room for model {name!r} on this host: every model it holds "
                            "is needed; retry"
                        )
                    log.info(
                        "%s: no room for %s now; its first request loads it",
                        self.models.node_id,
                        name,
                    )
                    return None
                try:
                    runtime = await self.models.load(name, record.default, record.settings)
                finally:
                    self.room.release(name)
                latest = self.view.records.get(name)
                if latest is None or not matches(runtime, latest.default, latest.settings):
                    continue
                new = self.models.install(name, runtime, latest)
                if for_request:
                    self.models.memory.keep_fresh(name)
                await self._on_installed(name, runtime.version, new)
                await self.room.trim(name, force=force)
                return runtime.version, True
        if for_request:
            raise ModelNotReadyError(f"model {name!r} keeps changing; retry")
        return None
