"""The Open Inference Protocol (KServe V2) under /v2: health, metadata, readiness, inference.

Errors are `{"error": ...}` here (errors_middleware renders them so for /v2).
The repository extension's routes are in v2_repository.py; docs/v2.md is the
reference.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from functools import cache
from importlib.metadata import PackageNotFoundError, version
from typing import Any, TypeVar

from aiohttp import web

from gateway.admission import INFERENCE_SLOTS, request_timeout
from gateway.envelope import json_response
from gateway.model_readiness import require_serving, unready_models, unready_reason
from gateway.oip.framing import (
    BINARY_CONTENT_TYPE,
    HEADER_LENGTH,
    JSON_CONTENT_TYPE,
    join_body,
    split_body,
)
from gateway.oip.infer import parse_request, render_response
from gateway.oip.metadata import model_metadata, server_metadata
from gateway.routes.common import mesh_of
from gateway.routes.table import SMALL_BODY_BYTES, Route
from mlbuffet.apikeys import Scope
from mlbuffet.protocol.inference import Tensor
from mlbuffet.protocol.names import parse_model_name, parse_version

OFF_LOOP_BYTES = 256 * 1024
"""Bodies from this size on are parsed and rendered in a thread, off the event loop."""

_T = TypeVar("_T")


def answer(body: dict[str, Any], status: int = 200) -> web.Response:
    return json_response(body, status)


def target(request: web.Request) -> tuple[str, int | None]:
    """The model and version (None: the default) of the URL."""
    name = parse_model_name(request.match_info["model"])
    raw = request.match_info.get("version")
    return name, None if raw is None else parse_version(raw)


@cache
def mlbuffet_version() -> str:
    try:
        return version("mlbuffet")
    except PackageNotFoundError:
        return "unknown"


async def off_loop(size: int, work: Callable[..., _T], *args: Any) -> _T:
    if size < OFF_LOOP_BYTES:
        return work(*args)
    return await asyncio.to_thread(work, *args)


async def server_live(request: web.Request) -> web.Response:
    return answer({"live": True})


async def server_ready(request: web.Request) -> web.Response:
    mesh = mesh_of(request)
    if not mesh.nc.is_connected:
        return answer({"ready": False, "error": "the gateway has no NATS connection"}, 503)
    unready = await unready_models(mesh)
    if unready:
        reasons = "; ".join(f"{name}: {why}" for name, why in sorted(unready.items()))
        return answer({"ready": False, "error": f"models not ready: {reasons}"}, 503)
    return answer({"ready": True})


async def server_info(request: web.Request) -> web.Response:
    return answer(server_metadata(mlbuffet_version()))


async def model_info(request: web.Request) -> web.Response:
    name, number = target(request)
    record = await mesh_of(request).view.get(name)
    return answer(model_metadata(record, number))


async def model_ready(request: web.Request) -> web.Response:
    name, number = target(request)
    mesh = mesh_of(request)
    record = await mesh.view.get(name)
    record.version(number)  # 404 for an unknown version
    reason = await unready_reason(mesh, record, number)
    if reason is not None:
        return answer({"name": name, "ready": False, "error": reason}, 503)
    return answer({"name": name, "ready": True})


async def infer(request: web.Request) -> web.Response:
    timeout_s = request_timeout(request)
    with request.app[INFERENCE_SLOTS]:
        return await _infer(request, timeout_s)


async def _infer(request: web.Request, timeout_s: float) -> web.Response:
    name, number = target(request)
    mesh = mesh_of(request)
    record = require_serving(await mesh.view.get(name))
    record.version(number)
    body = await request.read()
    framed = await off_loop(len(body), split_body, body, request.headers.get(HEADER_LENGTH))
    infer_request, plan = await off_loop(len(body), parse_request, framed, name, number)
    response = await mesh.infer(infer_request, timeout_s)
    size = sum(len(o.data) for o in response.outputs if isinstance(o, Tensor))
    document, chunks = await off_loop(size, render_response, response, plan)
    if not chunks:
        return web.Response(body=document, content_type=JSON_CONTENT_TYPE)
    return web.Response(
        body=join_body(document, chunks),
        content_type=BINARY_CONTENT_TYPE,
        headers={HEADER_LENGTH: str(len(document))},
    )


MODEL = "/v2/models/{model}"
VERSION = "/v2/models/{model}/versions/{version}"
ROUTES = (
    Route(
        "GET",
        "/v2",
        server_info,
        "OIP server metadata: name, version, extensions",
        Scope.READ,
        SMALL_BODY_BYTES,
    ),
    Route(
        "GET",
        "/v2/health/live",
        server_live,
        "OIP liveness: 200 while the gateway runs",
        Scope.PUBLIC,
        SMALL_BODY_BYTES,
    ),
    Route(
        "GET",
        "/v2/health/ready",
        server_ready,
        "OIP readiness: 200 if NATS is connected and every served model answers a probe",
        Scope.PUBLIC,
        SMALL_BODY_BYTES,
    ),
    Route(
        "GET",
        MODEL,
        model_info,
        "OIP model metadata (default version): inputs, outputs",
        Scope.READ,
        SMALL_BODY_BYTES,
    ),
    Route("GET", VERSION, model_info, "OIP metadata of one version", Scope.READ, SMALL_BODY_BYTES),
    Route(
        "GET",
        f"{MODEL}/ready",
        model_ready,
        "OIP: 200 if a modelhost serves the model",
        Scope.READ,
        SMALL_BODY_BYTES,
    ),
    Route(
        "GET",
        f"{VERSION}/ready",
        model_ready,
        "OIP: 200 if a modelhost serves the version",
        Scope.READ,
        SMALL_BODY_BYTES,
    ),
    Route(
        "POST",
        f"{MODEL}/infer",
        infer,
        "OIP inference (JSON or binary tensors) on the default version",
        Scope.PREDICT,
    ),
    Route("POST", f"{VERSION}/infer", infer, "OIP inference on one version", Scope.PREDICT),
)
