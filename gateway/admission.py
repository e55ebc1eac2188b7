"""Admission of an inference request: a place among the gateway's concurrent ones, and a deadline.

A gateway serves at most `max_inferences` predictions at once; the next one
is refused at once (503 with Retry-After, see envelope.py) without touching
NATS, so a flood of clients costs the gateway a refusal each, not a pile of
waiting requests. A caller may shorten or lengthen its own deadline with
the `Mlbuffet-Timeout` header (seconds), up to `max_request_timeout_s`.
"""

from __future__ import annotations

import math

from aiohttp import web

from gateway.service import CONFIG
from mlbuffet.protocol.errors import BadRequestError, OverloadedError

TIMEOUT_HEADER = "Mlbuffet-Timeout"
"""HTTP request header: how long the caller will wait for this inference, in seconds."""


class InferenceSlots:
    """A count of the inference requests in progress, refused past `limit`.

    `with slots:` holds a place for the block, or raises OverloadedError (503)
    if none is free. A plain context manager, not a generator: it runs on
    every prediction.
    """

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self.used = 0

    def __enter__(self) -> None:
        if self.used >= self.limit:
            raise OverloadedError(
                f"this gateway is serving its limit of {self.limit} inference requests; "
                "retry shortly"
            )
        self.used += 1

    def __exit__(self, *exc: object) -> None:
        self.used -= 1


INFERENCE_SLOTS = web.AppKey("inference_slots", InferenceSlots)


def request_timeout(request: web.Request) -> float:
    """The request's own `Mlbuffet-Timeout` (capped), else the gateway's default.

    Checked before a place is taken, so a bad header is a 400 even on a busy gateway.
    """
    config = request.app[CONFIG]
    raw = request.headers.get(TIMEOUT_HEADER)
    if raw is None:
        return config.request_timeout_s
    try:
        seconds = float(raw)
    except ValueError:
        seconds = math.nan
    if not math.isfinite(seconds) or seconds <= 0:
        raise BadRequestError(
            f"header {TIMEOUT_HEADER}: {raw[:40]!r} is not a positive number of seconds "
            "(for example 2.5)"
        )
    return min(seconds, config.max_request_timeout_s)
