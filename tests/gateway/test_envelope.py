"""One table: every error type becomes its HTTP status, in the original envelope."""

from __future__ import annotations

import pytest
from aiohttp import web

from gateway.envelope import errors_middleware
from mlbuffet.protocol import errors

TABLE = [
    (errors.BadRequestError, 400, "Bad Request"),
    (errors.ModelNotFoundError, 404, "Not Found"),
    (errors.ConflictError, 409, "Conflict"),
    (errors.PayloadTooLargeError, 413, "Request Entity Too Large"),
    (errors.UnsupportedMediaTypeError, 415, "Unsupported Media Type"),
    (errors.UnprocessableError, 422, "Unprocessable Entity"),
    (errors.TooManyRequestsError, 429, "Too Many Requests"),
    (errors.InternalError, 500, "Internal Server Error"),
    (errors.ServiceUnavailableError, 503, "Service Unavailable"),
    (errors.ModelNotReadyError, 503, "Service Unavailable"),
    (errors.OverloadedError, 503, "Service Unavailable"),
    (errors.DeadlineExceededError, 504, "Gateway Timeout"),
]


@pytest.mark.parametrize(("error", "status", "name"), TABLE)
async def test_each_error_type_is_its_status_in_the_envelope(aiohttp_client, error, status, name):
    async def fail(request: web.Request) -> web.Response:
        raise error("what went wrong")

    app = web.Application(middlewares=[errors_middleware])
    app.router.add_get("/", fail)
    client = await aiohttp_client(app)
    response = await client.get("/")
    assert response.status == status
    assert await response.json() == {
        "http_status": {"code": status, "description": "what went wrong", "name": name}
    }
    # Busy or nobody can serve now: worth a retry, and the answer says when.
    assert response.headers.get("Retry-After") == ("1" if status in (429, 503) else None)


@pytest.mark.parametrize(("error", "status", "name"), TABLE)
def test_an_error_survives_the_trip_over_nats(error, status, name):
    rebuilt = errors.error_for_status(status, "message")
    assert rebuilt.status == status and rebuilt.message == "message"
    assert isinstance(rebuilt, errors.MLBuffetError)


async def test_a_bug_is_a_500_that_does_not_show_its_details(aiohttp_client, caplog):
    async def fail(request: web.Request) -> web.Response:
        raise RuntimeError("secret internals")

    app = web.Application(middlewares=[errors_middleware])
    app.router.add_get("/", fail)
    client = await aiohttp_client(app)
    response = await client.get("/")
    body = await response.json()
    assert response.status == 500
    assert body["http_status"]["description"] == "internal error"
    assert "secret internals" in caplog.text
