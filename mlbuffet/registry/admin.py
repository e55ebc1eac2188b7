"""Changing the registry the way every writer must: write, let the writer catch up, then announce.

REST and `mlbuffet.Client` change models through this one admin, so both
map NATS failures the same way (503, 504, never a bare 500) and publish
the same model events in the same order; only what runs between the write
and its events differs (a gateway waits until its own view shows the change).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

from nats.aio.client import Client

from mlbuffet.mesh.errors import from_nats
from mlbuffet.mesh.events import publish_model_event
from mlbuffet.protocol.events import ModelEventKind
from mlbuffet.protocol.records import ModelRecord, ModelSettings
from mlbuffet.registry.model_file import ModelFile
from mlbuffet.registry.store import Registry

_T = TypeVar("_T")


async def _nothing() -> None:
    return None


class RegistryAdmin:
    """Every change to models, each mapped and announced; safe from many processes at once."""

    def __init__(
        self,
        registry: Registry,
        nc: Client,
        node_id: str,
        who: str,
        written: Callable[[], Awaitable[None]] = _nothing,
    ) -> None:
        """`who` names the writer in errors ("the gateway"); `written` runs after each write."""
        self.registry = registry
        self.nc = nc
        self.node_id = node_id
        self.who = who
        self.written = written

    async def _write(self, write: Awaitable[_T]) -> _T:
        """Await a registry write with its NATS failures mapped, then run `written`."""
        try:
            result = await write
        except Exception as exc:
            raise from_nats(exc, self.who) or exc from None
        await self.written()
        return result

    async def _announce(self, event: ModelEventKind, model: str, version: int | None) -> None:
        await publish_model_event(self.nc, self.node_id, event, model, version)

    async def upload(self, name: str, model: ModelFile, **details: Any) -> tuple[ModelRecord, int]:
        """Add `model` as the next version of `name`; the new record and version number.

        `details` are Registry.add_version's: description, filename, make_default, settings.
        """
        record, version = await self._write(self.registry.add_version(name, model, **details))
        await self._announce(ModelEventKind.UPLOADED, name, version)
        if record.default_version == version:
            await self._announce(ModelEventKind.DEFAULT_CHANGED, name, version)
        return record, version

    async def delete_model(self, name: str) -> ModelRecord:
        """Delete every version of `name`; the record it had."""
        gone = await self._write(self.registry.delete_model(name))
        await self._announce(ModelEventKind.DELETED, name, None)
        return gone

    async def delete_version(
        self, name: str, version: int | None
    ) -> tuple[ModelRecord | None, int]:
        """Delete one version (None: the default); the record afterwards and the version deleted."""
        record, deleted = await self._write(self.registry.delete_version(name, version))
        await self._announce(ModelEventKind.DELETED, name, deleted)
        if record is not None and record.default_version != deleted:
            await self._announce(ModelEventKind.DEFAULT_CHANGED, name, record.default_version)
        return record, deleted

    async def set_default(self, name: str, version: int) -> ModelRecord:
        record = await self._write(self.registry.set_default(name, version))
        await self._announce(ModelEventKind.DEFAULT_CHANGED, name, record.default_version)
        return record

    async def set_description(self, name: str, description: str) -> ModelRecord:
        record = await self._write(self.registry.set_description(name, description))
        await self._announce(ModelEventKind.DESCRIPTION_CHANGED, name, None)
        return record

    async def set_settings(self, name: str, settings: ModelSettings) -> ModelRecord:
        record = await self._write(self.registry.set_settings(name, settings))
        await self._announce(ModelEventKind.SETTINGS_CHANGED, name, None)
        return record

    async def set_serving(self, name: str, serving: bool) -> ModelRecord:
        """Mark a model served or not; the modelhosts announce it as they load or unload it."""
        return await self._write(self.registry.set_serving(name, serving))
