"""The aiohttp application: routes, the error middleware, and the mesh connection's lifetime."""

from __future__ import annotations

from aiohttp import web

from gateway.config import GatewayConfig
from gateway.envelope import errors_middleware
from gateway.routes import ROUTES, Route
from gateway.routes.root import HELP
from gateway.service import CONFIG, NODE_ID, mesh_context
from gateway.training import training_context
from mlbuffet.nodes import new_node_id


def render_help(routes: tuple[Route, ...]) -> str:
    width = max(len(r.method) for r in routes)
    lines = [
        "MLBuffet: a machine-learning model server on a NATS mesh.",
        "Models are named <model>; <model>:<version> or <model>:default pick a version.",
        "",
        *(f"{r.method:<{width}}  {r.path}  -  {r.summary}" for r in routes),
        "",
    ]
    return "\n".join(lines)


def create_app(config: GatewayConfig, node_id: str | None = None) -> web.Application:
    """The gateway application; NATS is connected when the app starts, not here."""
    # Uploads stream past client_max_size (see uploads.py); it bounds every other body.
    app = web.Application(middlewares=[errors_middleware], client_max_size=config.max_request_bytes)
    app[CONFIG] = config
    app[NODE_ID] = node_id or config.node_id or new_node_id("gateway")
    app[HELP] = render_help(ROUTES)
    for route in ROUTES:
        app.router.add_route(route.method, route.path, route.handler)
    app.cleanup_ctx.append(mesh_context)
    app.cleanup_ctx.append(training_context)
    return app
