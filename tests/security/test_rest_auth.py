"""Every REST route, asked with no key, a wrong key and a key of each scope.

Allowed means the route ran: any status but 401 and 403 (most answer 404 or
4xx here: the registry is empty, the bodies minimal). A route's own checks
come after auth, so a refused request never reaches them.
"""

from __future__ import annotations

import logging
import re
from typing import Any

import pytest
from aiohttp import web

from gateway.app import create_app
from gateway.config import GatewayConfig
from gateway.envelope import errors_middleware
from gateway.routes import ROUTES, Route
from gateway.security import SECURITY_HEADERS, add_routes, guard_middleware, protect
from mlbuffet.apikeys import GRANTABLE, KeyRing, Scope, new_key
from mlbuffet.config import NatsConfig

PATH_VALUES = {"ref": "iris", "model": "iris", "version": "1"}
"""Values for the path parameters; any other parameter (a route from another branch) gets "x1"."""
ROUTE_IDS = [f"{r.method} {r.path}" for r in ROUTES]
PARAMETER = re.compile(r"\{(\w+)(:[^}]*)?\}")


def concrete(route: Route) -> str:
    return PARAMETER.sub(lambda m: PATH_VALUES.get(m.group(1), "x1"), route.path)


def is_oip(path: str) -> bool:
    return path == "/v2" or path.startswith("/v2/")


async def call(client: Any, route: Route, key: str | None) -> tuple[int, Any, Any]:
    """Status, JSON body (of a refusal only) and headers. An allowed answer is not read:
    it may be a stream that never ends (server-sent events)."""
    headers = {"Authorization": f"Bearer {key}"} if key is not None else {}
    json_body = {} if route.method in ("POST", "PUT") else None
    async with client.request(
        route.method, concrete(route), json=json_body, headers=headers
    ) as response:
        body = None
        if response.status in (401, 403):
            body = await response.json()
        return response.status, body, response.headers


def assert_refused(status: int, body: Any, headers: Any, route: Route, expected: int) -> None:
    assert status == expected, (route, status, body)
    if is_oip(route.path):
        assert isinstance(body["error"], str) and body["error"]
    else:
        assert body["http_status"]["code"] == expected
    if expected == 401:
        assert headers["WWW-Authenticate"].startswith("Bearer")


def test_every_route_names_its_scope():
    """Routes added on other branches must say who may call them (else they need admin)."""
    unscoped = [f"{r.method} {r.path}" for r in ROUTES if r.scope is None]
    assert not unscoped, f"routes without an explicit scope: {unscoped}"
    assert all(isinstance(r.scope, Scope) for r in ROUTES)


def test_probes_and_the_welcome_are_the_only_public_routes():
    public = {f"{r.method} {r.path}" for r in ROUTES if r.scope is Scope.PUBLIC}
    assert public == {
        "GET /",
        "GET /help",
        "GET /openapi.json",
        "GET /api/test",
        "GET /v2/health/live",
        "GET /v2/health/ready",
        # The page and its script and style hold no data; the script reads the data routes.
        "GET /dashboard",
        "GET /dashboard/{file}",
        # Vendored libraries (uPlot, Swagger UI) and the API docs page: code, no data.
        "GET /dashboard/vendor/{package}/{file}",
        "GET /docs",
    }


@pytest.mark.parametrize("route", ROUTES, ids=ROUTE_IDS)
async def test_route_with_no_key_a_wrong_key_and_each_scope(
    route: Route, locked_gateway: Any, scoped_keys: dict[Scope, str]
):
    public = route.scope is Scope.PUBLIC
    for key in (None, new_key(), "not-even-a-key"):
        status, body, headers = await call(locked_gateway, route, key)
        if public:
            assert status not in (401, 403), (route, key, status, body)
        else:
            assert_refused(status, body, headers, route, 401)
    for scope in GRANTABLE:
        status, body, headers = await call(locked_gateway, route, scoped_keys[scope])
        allowed = public or scope in (route.scope, Scope.ADMIN)
        if allowed:
            assert status not in (401, 403), (route, scope, status, body)
        else:
            assert_refused(status, body, headers, route, 403)
            assert f"'{route.scope.value}'" in (
                body.get("error") or body["http_status"]["description"]
            )  # type: ignore[union-attr]


async def test_without_keys_every_route_is_open_on_loopback(gateway: Any):
    for route in ROUTES:
        status, body, _ = await call(gateway, route, None)
        assert status not in (401, 403), (route, status, body)


async def test_other_schemes_and_malformed_headers_are_401(
    locked_gateway: Any, scoped_keys: dict[Scope, str]
):
    key = scoped_keys[Scope.READ]
    for header in (f"Basic {key}", f"Token {key}", "Bearer", "Bearer ", key, f"Bearer {key}x"):
        response = await locked_gateway.get("/api/v1/models", headers={"Authorization": header})
        assert response.status == 401, header
    ok = await locked_gateway.get("/api/v1/models", headers={"Authorization": f"bearer  {key}"})
    assert ok.status == 200


async def test_a_route_without_a_scope_needs_admin(
    aiohttp_client: Any, key_ring: KeyRing, scoped_keys: dict[Scope, str]
):
    """Fail closed: a route someone forgot to scope is not open to every key."""

    async def secret(request: web.Request) -> web.Response:
        return web.json_response({"ok": True})

    app = web.Application(middlewares=[errors_middleware, guard_middleware])
    protect(app, GatewayConfig(nats=NatsConfig(), api_keys=key_ring))
    add_routes(app, (Route("GET", "/unscoped", secret, "forgot its scope"),))
    client = await aiohttp_client(app)
    assert (await client.get("/unscoped")).status == 401
    for scope in GRANTABLE:
        response = await client.get(
            "/unscoped", headers={"Authorization": f"Bearer {scoped_keys[scope]}"}
        )
        assert response.status == (200 if scope is Scope.ADMIN else 403), scope


async def test_help_shows_the_scope_of_each_route(gateway: Any):
    text = await (await gateway.get("/help")).text()
    for route in ROUTES:
        assert route.scope is not None
        line = next(line for line in text.splitlines() if f" {route.path} " in line)
        assert line.startswith(route.method) or f"[{route.scope.value}]" in text
    assert "[predict]" in text and "[write]" in text and "[public]" in text


async def test_security_headers_on_json_errors_and_downloads(
    locked_gateway: Any, scoped_keys: dict[Scope, str]
):
    read = {"Authorization": f"Bearer {scoped_keys[Scope.READ]}"}
    for path, headers in (("/", {}), ("/help", {}), ("/api/v1/models", {}), ("/nowhere", {})):
        response = await locked_gateway.get(path, headers=headers)
        for name, value in SECURITY_HEADERS.items():
            assert response.headers[name] == value, (path, name)
    response = await locked_gateway.get("/api/v1/models", headers=read)
    assert "frame-ancestors 'none'" in response.headers["Content-Security-Policy"]
    assert "Access-Control-Allow-Origin" not in response.headers


async def test_cors_is_off_unless_an_origin_is_configured(make_gateway: Any):
    origin = "https://app.example.com"
    preflight = {"Origin": origin, "Access-Control-Request-Method": "POST"}
    closed = await make_gateway()
    response = await closed.options("/api/v1/models/iris/prediction", headers=preflight)
    assert response.status == 405
    assert "Access-Control-Allow-Origin" not in response.headers
    assert (
        "Access-Control-Allow-Origin"
        not in (await closed.get("/", headers={"Origin": origin})).headers
    )

    opened = await make_gateway(cors_origins=(origin,))
    response = await opened.options("/api/v1/models/iris/prediction", headers=preflight)
    assert response.status == 204
    assert response.headers["Access-Control-Allow-Origin"] == origin
    assert "Authorization" in response.headers["Access-Control-Allow-Headers"]
    response = await opened.get("/", headers={"Origin": origin})
    assert response.headers["Access-Control-Allow-Origin"] == origin
    other = await opened.get("/", headers={"Origin": "https://evil.example"})
    assert "Access-Control-Allow-Origin" not in other.headers


def test_a_wildcard_cors_origin_is_refused():
    from mlbuffet.config import ConfigError

    with pytest.raises(ConfigError, match="cors-origin"):
        GatewayConfig(cors_origins=("*",))


async def test_small_body_routes_refuse_a_large_body_before_reading_it(
    locked_gateway: Any, scoped_keys: dict[Scope, str]
):
    write = {"Authorization": f"Bearer {scoped_keys[Scope.WRITE]}"}
    response = await locked_gateway.post(
        "/api/v1/models/iris/default", data=b"x" * (256 * 1024), headers=write
    )
    assert response.status == 413
    body = await response.json()
    assert "at most" in body["http_status"]["description"]
    # Without a Content-Length (chunked), reading past the limit is refused as well.

    async def chunks():
        for _ in range(8):
            yield b"x" * (16 * 1024)

    response = await locked_gateway.post(
        "/api/v1/models/iris/default", data=chunks(), headers=write
    )
    assert response.status == 413
    assert (await response.json())["http_status"]["code"] == 413
    # Unauthenticated, the limit is not even revealed: 401 first.
    response = await locked_gateway.post("/api/v1/models/iris/default", data=b"x" * (256 * 1024))
    assert response.status == 401


async def test_keys_never_reach_the_logs(
    make_gateway: Any, key_ring: KeyRing, scoped_keys: dict[Scope, str], caplog: Any
):
    caplog.set_level(logging.DEBUG)
    client = await make_gateway(api_keys=key_ring, access_log=True)
    for scope, key in scoped_keys.items():
        for route in ROUTES[:8]:
            await call(client, route, key)
        await call(client, ROUTES[4], key + "wrong")
        assert key not in caplog.text, scope
    assert "read-key" not in caplog.text or "Bearer" not in caplog.text


def test_the_app_of_a_locked_gateway_is_built_with_every_route(key_ring: KeyRing):
    app = create_app(GatewayConfig(api_keys=key_ring))
    assert len(list(app.router.routes())) == len(ROUTES)
