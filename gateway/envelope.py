"""The original MLBuffet's JSON envelope, and the one place errors become HTTP responses.

Every answer of the /api routes is `{"http_status": {"code", "description",
"name"}, ...fields}` with the same code as the HTTP status (the original
answered 200 for everything; we do not).
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from http import HTTPStatus
from typing import Any

import orjson
from aiohttp import web

from gateway.config import WHO
from mlbuffet.mesh.errors import from_nats
from mlbuffet.protocol.errors import MLBuffetError

log = logging.getLogger(__name__)

_DUMPS_OPTIONS = orjson.OPT_NON_STR_KEYS | orjson.OPT_SERIALIZE_NUMPY


def dumps(value: Any) -> str:
    """JSON text of a response with orjson: several times faster than json.dumps on
    the nested lists of a prediction. Non-finite floats become null (outputs.py
    already turns them into None)."""
    return orjson.dumps(value, option=_DUMPS_OPTIONS).decode()


def json_response(value: Any, status: int = 200) -> web.Response:
    """A JSON response whose body is orjson's bytes as they come: web.json_response
    would take text (decoded from those bytes) and encode it back."""
    return web.Response(
        body=orjson.dumps(value, option=_DUMPS_OPTIONS),
        status=status,
        content_type="application/json",
        charset="utf-8",
    )


RETRY_AFTER_S = "1"
"""Retry-After of a 429 or 503 (busy, or nobody can serve now), in whole seconds: by then
a modelhost has freed places or taken the model, and a burst of retries is spread out."""
RETRYABLE_STATUSES = frozenset({429, 503})

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


def reply(status: int = 200, description: str | None = None, /, **fields: Any) -> web.Response:
    """A JSON response in the envelope; `description` defaults to the status's phrase."""
    phrase = _PHRASES.get(status) or HTTPStatus(status).phrase
    body = {
        "http_status": {"code": status, "description": description or phrase, "name": phrase},
        **fields,
    }
    return json_response(body, status)


_PHRASES = {int(status): status.phrase for status in HTTPStatus}
"""HTTPStatus(code) is an Enum lookup by value: a microsecond on every answer."""


def error_reply(status: int, message: str) -> web.Response:
    return reply(status, message)


OIP_PREFIX = "/v2"


def oip_error_reply(status: int, message: str) -> web.Response:
    """The Open Inference Protocol's error body: `{"error": message}`."""
    return json_response({"error": message}, status)


def _error_response(
    render: Callable[[int, str], web.Response], error: MLBuffetError
) -> web.Response:
    response = render(error.status, error.message)
    if error.status in RETRYABLE_STATUSES:
        response.headers["Retry-After"] = RETRY_AFTER_S
    return response


@web.middleware
async def errors_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Render every failure in the envelope: ours, aiohttp's (404, 405, 413), and bugs (500).

    Under /v2 the body is the Open Inference Protocol's `{"error": ...}` instead.
    """
    path = request.path
    is_oip = path == OIP_PREFIX or path.startswith(OIP_PREFIX + "/")
    render = oip_error_reply if is_oip else error_reply
    try:
        return await handler(request)
    except MLBuffetError as exc:
        return _error_response(render, exc)
    except web.HTTPException as exc:
        if exc.status < 400:
            raise
        text = exc.text if exc.text and not exc.text.startswith(f"{exc.status}:") else exc.reason
        return render(exc.status, text)
    except Exception as exc:
        # A NATS failure no route mapped itself (a registry read, say) is still a 503 or 504.
        error = from_nats(exc, WHO)
        if error is None:
            log.exception("%s %s failed", request.method, request.path)
            return render(500, "internal error")
        log.warning(
            "%s %s: %s (%s)", request.method, request.path, error.message, type(exc).__name__
        )
        return _error_response(render, error)
