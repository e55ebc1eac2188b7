"""The sample models on first start, and knowing when every modelhost serves them.

`mlbuffet up` registers the samples (mlbuffet.samples: iris, diabetes) only
when it has just created the registry's buckets, so a model the user deleted
never comes back on a restart. It says it is ready only once every modelhost
has loaded them, so the first request after the ready line is answered.
"""

from __future__ import annotations

import asyncio
import logging

from nats.aio.client import Client
from nats.aio.msg import Msg
from nats.aio.subscription import Subscription

from mlbuffet.mesh.connection import flush_subscriptions
from mlbuffet.protocol import subjects
from mlbuffet.protocol.errors import MLBuffetError
from mlbuffet.protocol.events import ModelEvent
from mlbuffet.protocol.wire import unpack
from mlbuffet.registry import ModelInspector, Registry
from mlbuffet.samples import SAMPLES, sample_path

log = logging.getLogger(__name__)


class SampleError(RuntimeError):
    """A sample model could not be registered (a broken install: the files ship with MLBuffet)."""


async def register_samples(registry: Registry) -> list[str]:
    """Add every sample model as version 1, in the order of SAMPLES; returns their names."""
    inspector = ModelInspector()
    try:
        for sample in SAMPLES:
            path = sample_path(sample.name)
            try:
                model = await inspector.inspect(path)
                await registry.add_version(
                    sample.name,
                    model,
                    description=sample.description,
                    filename=sample.filename,
                    make_default=True,
                )
            except (OSError, MLBuffetError) as exc:
                raise SampleError(
                    f"cannot register the sample model {sample.name}: {exc}"
                ) from None
    finally:
        inspector.close()
    return [sample.name for sample in SAMPLES]


class LoadTracker:
    """Which modelhost (node id) has loaded which model, from the hosts' `loaded` events."""

    def __init__(self) -> None:
        self.loaded: dict[str, set[str]] = {}
        self._changed = asyncio.Event()
        self._subscription: Subscription | None = None

    async def start(self, nc: Client) -> None:
        self._subscription = await nc.subscribe(subjects.model_events("*"), cb=self._on_event)
        await flush_subscriptions(nc)

    def note(self, node: str, models: set[str]) -> None:
        """Record what a host says it serves (its ready line)."""
        self.loaded.setdefault(node, set()).update(models)
        self._changed.set()

    async def _on_event(self, msg: Msg) -> None:
        try:
            event = unpack(msg.data, ModelEvent.from_dict)
        except MLBuffetError:
            log.debug("ignoring a malformed model event on %s", msg.subject)
            return
        if event.event == ModelEvent.LOADED:
            self.note(event.node, {event.model})

    def serves_all(self, nodes: list[str], models: list[str]) -> bool:
        return all(set(models) <= self.loaded.get(node, set()) for node in nodes)

    async def wait(self, nodes: list[str], models: list[str]) -> None:
        """Return once every node in `nodes` has loaded every model in `models`."""
        while not self.serves_all(nodes, models):
            self._changed.clear()
            await self._changed.wait()

    async def stop(self) -> None:
        if self._subscription is not None:
            try:
                await self._subscription.unsubscribe()
            except Exception:
                log.debug("unsubscribing from model events failed", exc_info=True)
            self._subscription = None
