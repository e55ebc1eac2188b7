"""The router: inference routes are tried first under their prefix, and reordering the
routes for that shadows none of them."""

from __future__ import annotations

import re

import pytest
from aiohttp.test_utils import make_mocked_request

from gateway.app import create_app
from gateway.config import GatewayConfig
from gateway.routes import ROUTES
from gateway.routes.root import HELP


@pytest.fixture
def app():
    return create_app(GatewayConfig())


def sample_path(template: str) -> str:
    # A version where the route takes one, a name anywhere else.
    return re.sub(r"\{(\w+)\}", lambda m: "2" if m.group(1) == "version" else "iris", template)


def test_the_inference_routes_are_tried_first_under_their_prefix(app):
    index = app.router._resource_index  # aiohttp's per-prefix candidates, in the order tried
    assert index["/api/v1/models"][0].canonical == "/api/v1/models/{ref}/prediction"
    assert index["/v2/models"][0].canonical == "/v2/models/{model}/infer"


@pytest.mark.parametrize("route", ROUTES, ids=lambda r: f"{r.method} {r.path}")
async def test_every_route_still_resolves_to_its_own_handler(app, route):
    request = make_mocked_request(route.method, sample_path(route.path), app=app)
    match = await app.router.resolve(request)
    assert match.route.method == route.method
    assert match.route.resource.canonical == route.path
    assert match.handler is route.handler


def test_help_lists_the_routes_in_the_tables_order_still(app):
    text = app[HELP]
    positions = [text.index(f"  {route.path}  -  {route.summary}") for route in ROUTES]
    assert positions == sorted(positions)
