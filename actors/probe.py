"""What "ready" means for an actor process, for the probes of mlbuffet/roles/health_listener.py.

The listener starts before the actor exists (a probe may come while NATS is still being
reached, or while a modelhost loads big models), so the probe holds the actor once it is
built and answers "not ready" until then. An actor is ready when it is running (started,
not draining) with a live NATS connection, and when the role's own check, if any, passes.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Generic, TypeVar

from actors.base import Actor

A = TypeVar("A", bound=Actor)


class ActorProbe(Generic[A]):
    def __init__(self, extra: Callable[[A], str | None] | None = None) -> None:
        self.actor: A | None = None
        self.extra = extra

    def watch(self, actor: A) -> A:
        """Remember the actor the process runs (call from the factory that builds it)."""
        self.actor = actor
        return actor

    def unready_reason(self) -> str | None:
        actor = self.actor
        if actor is None:
            return "connecting to NATS"
        if not actor.nc.is_connected:
            return "no NATS connection (reconnecting)"
        if not actor.running:
            return f"{actor.role} is starting or draining, not running"
        return self.extra(actor) if self.extra is not None else None
