"""Who may call which route (API keys and scopes), body limits, CORS and security headers.

Every route of gateway/routes names the scope it needs; `guard_middleware`
checks the bearer key against it before the handler runs, so a handler never
sees an unauthorised request. With no keys configured, auth is off: the
gateway then listens on loopback only unless told `--insecure` (GatewayConfig
enforces that). Security headers are added to every response, errors and
streams included, as it is prepared.
"""

from __future__ import annotations

from aiohttp import hdrs, web
from aiohttp.web_urldispatcher import AbstractRoute

from gateway.config import GatewayConfig
from gateway.envelope import Handler
from gateway.routes.table import Route
from mlbuffet.apikeys import KeyRing, Scope
from mlbuffet.protocol.errors import ForbiddenError, PayloadTooLargeError, UnauthorizedError

KEYS = web.AppKey("api_keys", KeyRing)
ROUTE_OF = web.AppKey("route_of", dict[AbstractRoute, Route])
CORS_ORIGINS = web.AppKey("cors_origins", frozenset[str])
API_KEY_NAME = web.RequestKey("api_key_name", str)
"""request[API_KEY_NAME]: the name of the key that was accepted (unset with auth off)."""

UNSCOPED = Scope.ADMIN
"""What a route that does not name a scope needs: fail closed."""

CONTENT_SECURITY_POLICY = (
    "default-src 'self'; script-src 'self' 'unsafe-inline'; style-src 'self' 'unsafe-inline'; "
    "img-src 'self' data:; connect-src 'self'; object-src 'none'; base-uri 'none'; "
    "form-action 'self'; frame-ancestors 'none'"
)
"""Lets a self-contained page (inline script and style, talking to this origin only) work,
and nothing else: no third-party script, no framing."""

SECURITY_HEADERS = {
    "X-Content-Type-Options": "nosniff",
    "X-Frame-Options": "DENY",
    "Referrer-Policy": "no-referrer",
    "Content-Security-Policy": CONTENT_SECURITY_POLICY,
    "Cross-Origin-Resource-Policy": "same-origin",
}
CORS_ALLOW_HEADERS = "Authorization, Content-Type, Content-Encoding, Mlbuffet-Deadline, Mlbuffet-Timeout, Inference-Header-Content-Length"
CORS_EXPOSE_HEADERS = "Inference-Header-Content-Length, Content-Disposition, Retry-After"
CORS_MAX_AGE_S = "600"


def bearer_token(request: web.Request) -> str | None:
    header = request.headers.get(hdrs.AUTHORIZATION, "")
    scheme, _, token = header.partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        return None
    return token.strip()


def authorize(request: web.Request, scope: Scope) -> None:
    """Raise 401 or 403 unless the request's key has `scope` (always fine with auth off)."""
    keys = request.app[KEYS]
    if not keys or scope is Scope.PUBLIC:
        return
    token = bearer_token(request)
    if token is None:
        raise UnauthorizedError("an API key is required: send 'Authorization: Bearer <key>'")
    key = keys.find(token)
    if key is None:
        raise UnauthorizedError("the API key is not valid")
    if not key.allows(scope):
        raise ForbiddenError(f"the API key {key.name!r} lacks the '{scope.value}' scope")
    request[API_KEY_NAME] = key.name


def _preflight(request: web.Request) -> web.Response | None:
    """The answer to a CORS preflight from an allowed origin; None if it is not one."""
    origin = request.headers.get(hdrs.ORIGIN)
    if (
        request.method != hdrs.METH_OPTIONS
        or origin is None
        or origin not in request.app[CORS_ORIGINS]
        or hdrs.ACCESS_CONTROL_REQUEST_METHOD not in request.headers
    ):
        return None
    return web.Response(
        status=204,
        headers={
            hdrs.ACCESS_CONTROL_ALLOW_METHODS: "GET, POST, PUT, DELETE",
            hdrs.ACCESS_CONTROL_ALLOW_HEADERS: CORS_ALLOW_HEADERS,
            hdrs.ACCESS_CONTROL_MAX_AGE: CORS_MAX_AGE_S,
        },
    )


@web.middleware
async def guard_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Authorise, then bound the body, then run the handler (inside errors_middleware)."""
    preflight = _preflight(request)
    if preflight is not None:
        return preflight
    if getattr(request.match_info, "http_exception", None) is not None:
        return await handler(request)  # no such route: 404 or 405, nothing to protect
    route = request.app[ROUTE_OF].get(request.match_info.route)
    scope = route.scope if route is not None and route.scope is not None else UNSCOPED
    limit = route.max_body_bytes if route is not None else None
    if limit is not None:
        # Reading more than `limit` (a body without Content-Length) is a 413 as well.
        request = request.clone(client_max_size=limit)
    authorize(request, scope)
    if limit is not None and (request.content_length or 0) > limit:
        raise PayloadTooLargeError(f"this route takes a body of at most {limit} bytes")
    return await handler(request)


async def add_headers(request: web.Request, response: web.StreamResponse) -> None:
    """on_response_prepare: security headers everywhere; CORS for allowed origins; the
    WWW-Authenticate challenge on 401."""
    for name, value in SECURITY_HEADERS.items():
        response.headers.setdefault(name, value)
    if response.status == 401:
        response.headers.setdefault(hdrs.WWW_AUTHENTICATE, 'Bearer realm="mlbuffet"')
    origin = request.headers.get(hdrs.ORIGIN)
    if origin is not None and origin in request.app[CORS_ORIGINS]:
        response.headers[hdrs.ACCESS_CONTROL_ALLOW_ORIGIN] = origin
        response.headers[hdrs.ACCESS_CONTROL_EXPOSE_HEADERS] = CORS_EXPOSE_HEADERS
        response.headers.add(hdrs.VARY, "Origin")


def protect(app: web.Application, config: GatewayConfig) -> None:
    """Install the keys, CORS origins and header hook; routes are added with `add_routes`."""
    app[KEYS] = config.api_keys
    app[CORS_ORIGINS] = frozenset(config.cors_origins)
    app[ROUTE_OF] = {}
    app.on_response_prepare.append(add_headers)


def add_routes(app: web.Application, routes: tuple[Route, ...]) -> None:
    # aiohttp tries the resources under one URL prefix (/api/v1/models, /v2/models) in the
    # order they were added, a regex each: the inference routes go first so that a
    # prediction matches at the first try. No two routes match the same URL and method,
    # so the order changes nothing else (/help and the OpenAPI keep the table's order).
    for route in sorted(routes, key=lambda r: r.scope is not Scope.PREDICT):
        added = app.router.add_route(route.method, route.path, route.handler)
        app[ROUTE_OF][added] = route
