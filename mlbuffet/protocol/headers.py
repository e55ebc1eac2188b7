"""NATS header names carried by MLBuffet messages."""

from __future__ import annotations

from enum import Enum


class Header(str, Enum):
    DEADLINE = "Mlbuffet-Deadline"
    """Absolute deadline of a request, Unix time in milliseconds (integer, as text).

    A modelhost drops work whose deadline has passed: its caller has gone.
    Absolute rather than relative so that time spent queued counts; hosts of
    one cluster are expected to keep their clocks in step (NTP).
    """

    REQUEST_ID = "Mlbuffet-Request-Id"
    """Optional caller-chosen id, echoed in logs for tracing one request."""

    PROBE = "Mlbuffet-Probe"
    """On an inference subject: "is this model (version) ready?". A modelhost that
    serves it (loading a pinned version first) answers an InferResponse with no
    outputs, and runs nothing; no responders means no host is ready."""
