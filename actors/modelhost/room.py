"""Making room in a modelhost's memory budget: which models to give up, and giving them up.

Before a model loads, room is made for what it will likely cost (memory.py);
the bytes are reserved until it is installed, so two loads at once do not count on the same free memory. A load
that turns out to cost more than foreseen is followed by a trim. Loads the
registry brings (an upload, a restart) only evict surplus models; a load a
request is waiting for (a place request) evicts the least recently used
ones too: what is asked for now is more recently used than any of them.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable

from actors.modelhost.model_set import ModelSet
from mlbuffet.protocol.sizes import format_size

log = logging.getLogger(__name__)

Evicted = Callable[[str, str], Awaitable[None]]
"""Told (model, reason) before a model is given up, to stop requests reaching it."""


class Room:
    """Evicts a host's models, least recently used first, to keep it within its budget."""

    def __init__(
        self, models: ModelSet, *, surplus: Callable[[str], bool], on_evicted: Evicted
    ) -> None:
        self.models = models
        self._surplus = surplus
        self._on_evicted = on_evicted
        self._reserved: dict[str, int] = {}
        """Bytes promised to each load under way."""
        self._choosing = asyncio.Lock()
        """Held while victims are chosen and given up, so two loads never pick the same one."""

    async def make(self, name: str, file_size: int, sessions: int, *, force: bool) -> bool:
        """Room for `name` (reserved until `release`), evicting if need be; False if none.

        ModelTooLargeError if it cannot fit even in an empty host.
        """
        memory = self.models.memory
        memory.check_floor(name, file_size, sessions)
        need = memory.predict(name, file_size * sessions)
        async with self._choosing:
            victims = memory.choose_evictions(
                name,
                need,
                self.models.costs(),
                surplus=self._surplus,
                force=force,
                reserved=sum(self._reserved.values()),
            )
            if victims is None:
                return False
            for victim in victims:
                await self._evict(victim, f"room for {name} ({format_size(need)})")
            self._reserved[name] = need
        return True

    def release(self, name: str) -> None:
        """The load of `name` is over (installed or failed): its reservation goes."""
        self._reserved.pop(name, None)

    async def trim(self, loaded: str, *, force: bool) -> None:
        """After `loaded` turned out to cost more than foreseen: back within the budget.

        Without `force` only surplus models go, and if that is not enough, `loaded`
        itself: a load nobody waits for does not push out what requests use.
        """
        memory = self.models.memory
        async with self._choosing:
            victims = memory.choose_evictions(
                loaded,
                0,
                self.models.costs(),
                surplus=self._surplus,
                force=force,
                reserved=sum(self._reserved.values()),
            )
            for victim in victims if victims is not None else [loaded]:
                await self._evict(victim, "over the memory budget after a load")

    async def _evict(self, name: str, reason: str) -> None:
        if name not in self.models.models:
            return
        log.info("%s evicts %s: %s", self.models.node_id, name, reason)
        await self._on_evicted(name, reason)  # first: no new request may reach it
        self.models.remove(name, evicted=True)
