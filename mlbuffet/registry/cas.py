"""Compare-and-set on a JetStream KV key: when to retry, and how long to wait first.

The registry's model records and the trainer's job records are both changed
by read, modify, write-if-unchanged; this is the part they share.
"""

from __future__ import annotations

import asyncio
import random

import nats.js.errors as js_errors

CAS_ATTEMPTS = 16
"""Compare-and-set rounds before a change gives up with ConflictError."""
CAS_BACKOFF_S = 0.002
CAS_BACKOFF_MAX_S = 0.25
"""Random wait before round n: up to CAS_BACKOFF_S * 2**n seconds, at most CAS_BACKOFF_MAX_S."""

_STALE_REVISION = (10071, 10164)
"""JetStream API errors of a write or delete whose expected revision is no longer the last."""


def lost_race(exc: BaseException) -> bool:
    """Whether a KV write failed only because another writer changed the key first."""
    if isinstance(exc, js_errors.KeyWrongLastSequenceError):
        return True
    return isinstance(exc, js_errors.APIError) and exc.err_code in _STALE_REVISION


async def backoff(attempt: int) -> None:
    """Wait before retry `attempt` (1, 2, ...).

    Writers that lost together must not retry together, or one of them can
    lose every round: full jitter, growing with each loss, capped so the last
    rounds do not sleep for a minute.
    """
    await asyncio.sleep(random.uniform(0, min(CAS_BACKOFF_MAX_S, CAS_BACKOFF_S * 2**attempt)))
