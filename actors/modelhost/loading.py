"""Reading a model file from the registry, again after a transient NATS or JetStream failure.

Right after a NATS node dies, JetStream elects new stream leaders and answers
nothing (or 503) for a few seconds; a host that gave up on the first failed
read would leave the model unserved until the registry next changed. So a
read that fails that way is tried again with a growing wait, a bounded number
of times; an error that waiting cannot fix (a missing file) is raised at once.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable

import nats.errors
import nats.js.errors

from mlbuffet.mesh.errors import CONNECTION_ERRORS
from mlbuffet.protocol.errors import DeadlineExceededError, ServiceUnavailableError
from mlbuffet.registry import Registry

log = logging.getLogger(__name__)

READ_ATTEMPTS = 8
FIRST_WAIT_S = 0.25
MAX_WAIT_S = 5.0
"""Waits of 0.25, 0.5, 1, 2, 4, 5, 5 s: about 18 s in all, longer than a leader election."""


TRANSIENT_ERRORS: tuple[type[BaseException], ...] = (
    TimeoutError,  # nats.errors.TimeoutError is one too
    nats.errors.NoRespondersError,
    ServiceUnavailableError,
    DeadlineExceededError,
    *CONNECTION_ERRORS,
)


def is_transient(exc: BaseException) -> bool:
    """True for a NATS or JetStream failure that may pass on its own (timeout, no leader)."""
    if isinstance(exc, nats.js.errors.APIError):
        return exc.code is not None and exc.code >= 500
    return isinstance(exc, TRANSIENT_ERRORS)


async def read_model(
    registry: Registry,
    name: str,
    version: int,
    *,
    still_wanted: Callable[[], bool] = lambda: True,
    attempts: int = READ_ATTEMPTS,
    first_wait_s: float = FIRST_WAIT_S,
) -> bytes:
    """The bytes of `name`:`version`, retrying transient failures while `still_wanted()`."""
    wait = first_wait_s
    for attempt in range(1, attempts + 1):
        try:
            return await registry.read(name, version)
        except Exception as exc:
            if not is_transient(exc) or attempt == attempts or not still_wanted():
                raise
            log.warning(
                "cannot read %s:%s from the registry yet (%s); trying again in %.2f s "
                "(attempt %d of %d)",
                name,
                version,
                type(exc).__name__,
                wait,
                attempt,
                attempts,
            )
        await asyncio.sleep(wait)
        wait = min(wait * 2, MAX_WAIT_S)
    raise AssertionError("unreachable: the last attempt returns or raises")
