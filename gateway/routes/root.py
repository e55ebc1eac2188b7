"""The welcome, the help, and the seed's load-balancing test."""

from __future__ import annotations

import asyncio
from collections import Counter
from typing import Any

from aiohttp import web

from gateway.envelope import dumps, reply
from gateway.routes.common import json_body, mesh_of
from gateway.routes.table import SMALL_BODY_BYTES, Route
from mlbuffet.apikeys import Scope
from mlbuffet.protocol.errors import MLBuffetError, UnprocessableError

MAX_ITEM_DEPTH = 64
"""Items travel in msgpack and come back in the JSON answer, whose encoders stop at a few
hundred levels; a bound well below theirs keeps any accepted item renderable."""
WELCOME = (
    "Greetings from MLBuffet - Inferrer, the Machine Learning model server. "
    "For more information, visit /help"
)
HELP = web.AppKey("help", str)
OPENAPI = web.AppKey("openapi", dict[str, Any])


async def welcome(request: web.Request) -> web.Response:
    return reply(200, WELCOME)


async def show_help(request: web.Request) -> web.Response:
    return web.Response(text=request.app[HELP], content_type="text/plain")


async def openapi(request: web.Request) -> web.Response:
    return web.json_response(request.app[OPENAPI], dumps=dumps)


async def api_test(request: web.Request) -> web.Response:
    return reply(200)


async def send_to_modelhost(request: web.Request) -> web.Response:
    body = await json_body(request)
    if not isinstance(body, dict) or "data" not in body:
        raise UnprocessableError("No test data provided (data:[...])")
    items = body["data"]
    if not isinstance(items, list):
        raise UnprocessableError("Test data is not a list enclosed by squared brackets")
    mesh = mesh_of(request)
    if len(items) > mesh.config.max_echo_items:
        raise UnprocessableError(f"at most {mesh.config.max_echo_items} test items at once")
    if not all(_nested_within(item, MAX_ITEM_DEPTH) for item in items):
        raise UnprocessableError(f"test items may be nested at most {MAX_ITEM_DEPTH} deep")
    answers = await asyncio.gather(*(mesh.echo(item) for item in items), return_exceptions=True)
    failures = [a for a in answers if isinstance(a, BaseException)]
    if items and len(failures) == len(items):
        raise failures[0]
    results = []
    for item, answer in zip(items, answers, strict=True):
        if isinstance(answer, MLBuffetError):
            results.append({"data": item, "error": answer.message, "code": int(answer.status)})
        elif isinstance(answer, BaseException):
            raise answer
        else:
            results.append({"data": item, "node": answer.node})
    nodes = Counter(r["node"] for r in results if "node" in r)
    return reply(200, results=results, nodes=dict(nodes))


def _nested_within(value: Any, limit: int) -> bool:
    """Whether lists and objects in `value` nest at most `limit` deep (no recursion of our own)."""
    stack = [(value, 1)]
    while stack:
        item, depth = stack.pop()
        if isinstance(item, list | dict):
            if depth > limit:
                return False
            children = item.values() if isinstance(item, dict) else item
            stack.extend((child, depth + 1) for child in children)
    return True


ROUTES = (
    Route("GET", "/", welcome, "welcome message", Scope.PUBLIC, SMALL_BODY_BYTES),
    Route("GET", "/help", show_help, "this list", Scope.PUBLIC, SMALL_BODY_BYTES),
    Route(
        "GET",
        "/openapi.json",
        openapi,
        "the OpenAPI 3.1 document of these routes",
        Scope.PUBLIC,
        SMALL_BODY_BYTES,
    ),
    Route(
        "GET",
        "/api/test",
        api_test,
        "answers 200 when the gateway is up",
        Scope.PUBLIC,
        SMALL_BODY_BYTES,
    ),
    Route(
        "POST",
        "/api/test/sendtomodelhost",
        send_to_modelhost,
        'send each item of {"data": [...]} to the modelhosts; shows which node answered each',
        Scope.PREDICT,
        SMALL_BODY_BYTES,
    ),
)
