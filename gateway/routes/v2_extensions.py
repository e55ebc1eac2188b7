"""Triton's model configuration and statistics extensions under /v2 (docs/v2.md).

Registered before the metadata routes so `/v2/models/stats` is not read as
the metadata of a model named "stats" (Triton reserves that path too).
"""

from __future__ import annotations

from aiohttp import web

from gateway.oip.model_config import model_config
from gateway.oip.statistics import statistics
from gateway.routes.common import mesh_of
from gateway.routes.table import SMALL_BODY_BYTES, Route
from gateway.routes.v2 import MODEL, VERSION, answer, target
from mlbuffet.apikeys import Scope


async def config(request: web.Request) -> web.Response:
    name, number = target(request)
    record = await mesh_of(request).view.get(name)
    return answer(model_config(record, number))


async def stats(request: web.Request) -> web.Response:
    """One version, every version of one model, or every model (no model in the URL)."""
    mesh = mesh_of(request)
    if "model" in request.match_info:
        name, number = target(request)
        record = await mesh.view.get(name)
        wanted = [
            (name, list(record.versions) if number is None else [record.version(number).version])
        ]
    else:
        wanted = [(n, list(r.versions)) for n, r in sorted(mesh.view.records.items())]
    return answer(statistics(await mesh.modelhost_counters(), wanted))


ROUTES = (
    Route(
        "GET",
        "/v2/models/stats",
        stats,
        "OIP statistics of every model version (Triton's extension)",
        Scope.READ,
        SMALL_BODY_BYTES,
    ),
    Route(
        "GET",
        f"{MODEL}/config",
        config,
        "OIP model configuration of the default version (Triton's extension)",
        Scope.READ,
        SMALL_BODY_BYTES,
    ),
    Route(
        "GET",
        f"{VERSION}/config",
        config,
        "OIP model configuration of one version",
        Scope.READ,
        SMALL_BODY_BYTES,
    ),
    Route(
        "GET",
        f"{MODEL}/stats",
        stats,
        "OIP statistics of every version of one model",
        Scope.READ,
        SMALL_BODY_BYTES,
    ),
    Route(
        "GET",
        f"{VERSION}/stats",
        stats,
        "OIP statistics of one version",
        Scope.READ,
        SMALL_BODY_BYTES,
    ),
)
