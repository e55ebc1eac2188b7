"""A route: method, path, handler, what it does in one line (for /help), and who may call it."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from aiohttp import web

from mlbuffet.apikeys import Scope

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


@dataclass(frozen=True, slots=True)
class Route:
    method: str
    path: str
    handler: Handler
    summary: str
    scope: Scope | None = None
    """The API key scope the route needs (Scope.PUBLIC: none). Every route must say;
    a route that does not is treated as ADMIN, and tests/security fails on it."""
    max_body_bytes: int | None = None
    """Largest request body (by Content-Length); None: the gateway's --max-request-mib."""


SMALL_BODY_BYTES = 64 * 1024
"""Routes that read no body, or a small JSON one (a default version, a description)."""
