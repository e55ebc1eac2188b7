"""The aiohttp application: routes, the error middleware, and the mesh connection's lifetime."""

from __future__ import annotations

from aiohttp import web

from gateway.admission import INFERENCE_SLOTS, InferenceSlots
from gateway.config import GatewayConfig
from gateway.envelope import errors_middleware
from gateway.event_feeds import EVENT_FEEDS, EventFeeds, close_event_feeds, presence_context
from gateway.http_metrics import HTTP_METRICS, HttpMetrics, http_metrics_middleware
from gateway.openapi import openapi_document
from gateway.routes import ROUTES, Route
from gateway.routes.root import HELP, OPENAPI
from gateway.routes.v2 import mlbuffet_version
from gateway.security import add_routes, guard_middleware, protect
from gateway.service import CONFIG, NODE_ID, mesh_context
from gateway.training import training_context
from mlbuffet.roles.node_ids import new_node_id


def _scope(route: Route) -> str:
    return route.scope.value if route.scope is not None else "admin"


def render_help(routes: tuple[Route, ...]) -> str:
    width = max(len(r.method) for r in routes)
    lines = [
        "MLBuffet: a machine-learning model server on a NATS mesh.",
        "Models are named <model>; <model>:<version> or <model>:default pick a version.",
        "",
        *(f"{r.method:<{width}}  {r.path}  -  {r.summary}  [{_scope(r)}]" for r in routes),
        "",
        "[scope] is what an API key needs for the route when keys are configured (docs/security.md).",
        "",
    ]
    return "\n".join(lines)


def create_app(config: GatewayConfig, node_id: str | None = None) -> web.Application:
    """The gateway application; NATS is connected when the app starts, not here."""
    # Uploads stream past client_max_size (see uploads.py); it bounds every other body.
    # The metrics middleware is outermost: it counts the status the errors middleware rendered.
    app = web.Application(
        middlewares=[http_metrics_middleware, errors_middleware, guard_middleware],
        client_max_size=config.max_request_bytes,
    )
    protect(app, config)
    app[CONFIG] = config
    app[INFERENCE_SLOTS] = InferenceSlots(config.max_inferences)
    app[NODE_ID] = node_id or config.node_id or new_node_id("gateway")
    app[HELP] = render_help(ROUTES)
    app[OPENAPI] = openapi_document(ROUTES, mlbuffet_version())
    add_routes(app, ROUTES)
    app[HTTP_METRICS] = HttpMetrics()
    app[EVENT_FEEDS] = EventFeeds()
    app.cleanup_ctx.append(mesh_context)
    app.cleanup_ctx.append(presence_context)
    app.on_shutdown.append(close_event_feeds)
    app.cleanup_ctx.append(training_context)
    return app
