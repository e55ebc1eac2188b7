"""Asking the pool to load a model that no modelhost holds (subjects.place).

A caller whose inference request meets "no responders" asks here once, then
sends the request again: the host that answers has loaded the model and
subscribed to it. Concurrent first requests for one model on one connection
share one place request, so a burst of them causes one load, not one each.
"""

from __future__ import annotations

import asyncio
import logging
import time

import nats.errors
from nats.aio.client import Client

from mlbuffet.protocol import subjects
from mlbuffet.protocol.errors import DeadlineExceededError, ModelNotReadyError
from mlbuffet.protocol.placement import PlaceReply
from mlbuffet.protocol.wire import unpack

log = logging.getLogger(__name__)

FIRST_ATTEMPT_S = 2.0
"""How long the first place request may take before another is sent (each next one waits
twice as long): the host loading the model may have died, and its answer with it."""


class Placer:
    """Sends place requests for one connection; one at a time per model."""

    def __init__(self, nc: Client) -> None:
        self.nc = nc
        self._pending: dict[str, asyncio.Future[PlaceReply]] = {}

    async def place(self, model: str, timeout_s: float) -> PlaceReply:
        """A host's word that `model` is loaded and subscribed; the host's error otherwise.

        ModelNotReadyError (503) when no host takes place requests, DeadlineExceededError
        (504) when none answered within `timeout_s`.
        """
        pending = self._pending.get(model)
        if pending is None:
            pending = asyncio.ensure_future(self._ask(model, timeout_s))
            self._pending[model] = pending
            pending.add_done_callback(lambda _: self._pending.pop(model, None))
        return await asyncio.shield(pending)

    async def _ask(self, model: str, timeout_s: float) -> PlaceReply:
        # A load can take seconds, so a silent host is not given up at once; but a host
        # that died mid-load never answers, so the ask goes out again, maybe to another.
        end = time.monotonic() + timeout_s
        attempt_s = FIRST_ATTEMPT_S
        while True:
            left = end - time.monotonic()
            try:
                msg = await self.nc.request(
                    subjects.place(model), b"", timeout=max(0.001, min(attempt_s, left))
                )
                break
            except nats.errors.NoRespondersError:
                raise ModelNotReadyError(
                    f"no modelhost serves {model!r} and none loads models on request"
                ) from None
            except nats.errors.TimeoutError:
                if attempt_s >= left:
                    raise DeadlineExceededError(
                        f"no modelhost loaded {model!r} within {timeout_s:.1f} s"
                    ) from None
                attempt_s *= 2
        reply = unpack(msg.data, PlaceReply.from_dict)
        log.debug("%s placed on %s (loaded: %s)", model, reply.node, reply.loaded)
        return reply
