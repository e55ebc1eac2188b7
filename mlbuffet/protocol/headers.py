"""NATS header names carried by MLBuffet messages, and the deadline header's format.

The deadline is written by whoever sends a request (gateway, client) and read
by the modelhost; its format lives here once so that the two cannot drift.
"""

from __future__ import annotations

from collections.abc import Mapping
from enum import Enum


class Header(str, Enum):
    DEADLINE = "Mlbuffet-Deadline"
    """Absolute deadline of a request, Unix time in milliseconds (integer, as text).

    A modelhost drops work whose deadline has passed: its caller has gone.
    Absolute rather than relative so that time spent queued counts; hosts of
    one cluster are expected to keep their clocks in step (NTP).
    """

    PROBE = "Mlbuffet-Probe"
    """On an inference subject: "is this model (version) ready?". A modelhost that
    serves it (loading a pinned version first) answers an InferResponse with no
    outputs, and runs nothing; no responders means no host is ready."""


def deadline_ms_of(deadline: float) -> int:
    """A deadline (Unix time, seconds) as the wire carries it, in the header or in an
    InferRequest's `deadline_ms`: Unix time in milliseconds."""
    return int(deadline * 1000)


def deadline_header(deadline: float) -> dict[str, str]:
    """The Mlbuffet-Deadline header of a request due at `deadline` (Unix time, seconds)."""
    return {Header.DEADLINE.value: str(deadline_ms_of(deadline))}


def deadline_ms(headers: Mapping[str, str] | None) -> int | None:
    """The deadline a message carries (Unix time, milliseconds), or None.

    A malformed value counts as no deadline: the request is served rather than
    dropped for a header its caller got wrong.
    """
    raw = (headers or {}).get(Header.DEADLINE.value)
    if not raw:
        return None
    try:
        return int(raw)
    except ValueError:
        return None
