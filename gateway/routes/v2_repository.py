"""The OIP model repository extension, as a mesh understands it.

The repository is the registry. `unload` marks the model not served in its
registry record (`serving: false`); every modelhost follows the record and
stops serving it, and every gateway refuses its requests with 503 at once.
`load` marks it served again and waits (bounded) until a modelhost answers
for it. Both act on the model with all its versions, cluster-wide, and
survive restarts because they live in the registry. Files are never touched:
uploads and deletes stay with /api/v1.
"""

from __future__ import annotations

import logging
from typing import Any

from aiohttp import web

from gateway.model_readiness import (
    unloaded_reason,
    unready_reasons,
    wait_until_ready,
    wait_until_unserved,
)
from gateway.routes.common import json_body, mesh_of
from gateway.routes.table import SMALL_BODY_BYTES, Route
from gateway.routes.v2 import answer
from mlbuffet.apikeys import Scope
from mlbuffet.protocol.errors import BadRequestError
from mlbuffet.protocol.names import parse_model_name
from mlbuffet.protocol.records import ModelRecord

log = logging.getLogger(__name__)

READY = "READY"
UNAVAILABLE = "UNAVAILABLE"
UNLOAD_WAIT_S = 5.0
"""How long an unload waits for the modelhosts to let go; gateways refuse at once anyway."""


def _entries(record: ModelRecord, reason: str | None) -> list[dict[str, Any]]:
    """One entry per version: the default's state is probed, the others follow it.

    A modelhost serving a model loads its other versions on their first request,
    so they are as available as the default; their reason says so.
    """
    entries = []
    for number in sorted(record.versions):
        if reason is not None:
            state, why = UNAVAILABLE, reason
        elif number == record.default_version:
            state, why = READY, ""
        else:
            state, why = READY, "loaded by a modelhost on its first request"
        entries.append({"name": record.name, "version": str(number), "state": state, "reason": why})
    return entries


async def index(request: web.Request) -> web.Response:
    body = await json_body(request, required=False)
    if body is not None and not isinstance(body, dict):
        raise BadRequestError('the body must be a JSON object like {"ready": true}')
    ready_only = (body or {}).get("ready", False)
    if not isinstance(ready_only, bool):
        raise BadRequestError("'ready' must be true or false")
    mesh = mesh_of(request)
    records = sorted(mesh.view.records.values(), key=lambda r: r.name)
    reasons = await unready_reasons(mesh, records)
    entries = [e for r in records for e in _entries(r, reasons[r.name])]
    if ready_only:
        entries = [e for e in entries if e["state"] == READY]
    return web.json_response(entries)


async def _set_serving(request: web.Request, serving: bool) -> str:
    name = parse_model_name(request.match_info["model"])
    await json_body(request, required=False)  # parameters (Triton's config overrides) are ignored
    await mesh_of(request).admin.set_serving(name, serving)
    return name


async def load(request: web.Request) -> web.Response:
    name = await _set_serving(request, True)
    mesh = mesh_of(request)
    await wait_until_ready(mesh, name, mesh.config.request_timeout_s)
    return answer({"name": name, "state": READY})


async def unload(request: web.Request) -> web.Response:
    name = await _set_serving(request, False)
    if not await wait_until_unserved(mesh_of(request), name, UNLOAD_WAIT_S):
        log.warning("a modelhost still answers for %s after its unload", name)
    return answer({"name": name, "state": UNAVAILABLE, "reason": unloaded_reason(name)})


MODEL = "/v2/repository/models/{model}"
ROUTES = (
    Route(
        "POST",
        "/v2/repository/index",
        index,
        'OIP repository index: every version, READY or UNAVAILABLE; body {"ready": true} filters',
        Scope.READ,
        SMALL_BODY_BYTES,
    ),
    Route(
        "POST",
        f"{MODEL}/load",
        load,
        "OIP: serve the model again on the modelhosts, and wait",
        Scope.WRITE,
        SMALL_BODY_BYTES,
    ),
    Route(
        "POST",
        f"{MODEL}/unload",
        unload,
        "OIP: stop serving the model everywhere (kept)",
        Scope.WRITE,
        SMALL_BODY_BYTES,
    ),
)
