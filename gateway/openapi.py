"""The OpenAPI 3.1 document of the REST API, built from ROUTES so it cannot miss a route.

Paths, methods, summaries and the API key scope come from each Route; the few
request and response schemas are written here by hand. They say what a client
may rely on (the seed's envelope on /api, `{"error": ...}` on /v2), not every
field: docs/rest-api.md and docs/v2.md remain the reference. The test suite
fuzzes the live gateway against this document (tests/gateway/test_openapi.py).
"""

from __future__ import annotations

import re
from typing import Any

from gateway.envelope import OIP_PREFIX
from gateway.routes.table import Route
from mlbuffet.apikeys import Scope

JSON = "application/json"
TEXT = "text/plain"
BINARY = "application/octet-stream"

ENVELOPE: dict[str, Any] = {
    "type": "object",
    "required": ["http_status"],
    "properties": {
        "http_status": {
            "type": "object",
            "required": ["code", "description", "name"],
            "properties": {
                "code": {"type": "integer"},
                "description": {"type": "string"},
                "name": {"type": "string"},
            },
        }
    },
}
OIP_ERROR: dict[str, Any] = {
    "type": "object",
    "required": ["error"],
    "properties": {"error": {"type": "string"}},
}
OBJECT: dict[str, Any] = {"type": "object"}

_UPLOAD_FORM: dict[str, Any] = {
    "type": "object",
    "required": ["path"],
    "properties": {
        "path": {"type": "string", "contentMediaType": BINARY},
        "model_description": {"type": "string"},
    },
}
_TRAIN_FORM: dict[str, Any] = {
    "type": "object",
    "required": ["script", "requirements", "dataset"],
    "properties": {
        "script": {"type": "string", "contentMediaType": BINARY},
        "requirements": {"type": "string", "contentMediaType": BINARY},
        "dataset": {"type": "string", "contentMediaType": BINARY},
        "description": {"type": "string"},
        "make_default": {"type": "boolean"},
        "timeout": {"type": "number"},
    },
}
_SETTINGS: dict[str, Any] = {
    "type": "object",
    "properties": {
        "max_batch_size": {"type": "integer"},
        "max_queue_delay_us": {"type": "integer"},
        "preferred_batch_sizes": {"type": "array", "items": {"type": "integer"}},
        "intra_op_threads": {"type": "integer"},
        "sessions": {"type": "integer"},
        "min_replicas": {"type": "integer", "minimum": 0},
        "max_replicas": {"type": ["integer", "null"], "minimum": 1},
    },
}
_TENSOR: dict[str, Any] = {
    "type": "object",
    "required": ["name", "shape", "datatype", "data"],
    "properties": {
        "name": {"type": "string"},
        "shape": {"type": "array", "items": {"type": "integer"}},
        "datatype": {"type": "string"},
        "data": {"type": "array"},
    },
}

REQUEST_BODIES: dict[str, dict[str, Any]] = {
    "POST /api/test/sendtomodelhost": {
        JSON: {"type": "object", "required": ["data"], "properties": {"data": {"type": "array"}}}
    },
    "POST /api/v1/models/{ref}/default": {
        JSON: {"type": "object", "required": ["default"], "properties": {"default": {}}}
    },
    "PUT /api/v1/models/{ref}/settings": {JSON: _SETTINGS},
    "POST /api/v1/models/{ref}": {
        JSON: {"type": "object", "properties": {"model_description": {"type": "string"}}},
        "multipart/form-data": _UPLOAD_FORM,
    },
    "PUT /api/v1/models/{ref}": {"multipart/form-data": _UPLOAD_FORM},
    "POST /api/v1/models/{ref}/prediction": {
        JSON: {"type": "object", "properties": {"values": {"type": "array"}}}
    },
    "POST /v2/models/{model}/infer": {
        JSON: {
            "type": "object",
            "required": ["inputs"],
            "properties": {"inputs": {"type": "array", "items": _TENSOR}},
        }
    },
    "POST /v2/models/{model}/versions/{version}/infer": {
        JSON: {
            "type": "object",
            "required": ["inputs"],
            "properties": {"inputs": {"type": "array", "items": _TENSOR}},
        }
    },
    "POST /v2/repository/index": {
        JSON: {"type": "object", "properties": {"ready": {"type": "boolean"}}}
    },
    "POST /api/v1/train/{model}": {"multipart/form-data": _TRAIN_FORM},
    "POST /api/v1/train/{model}/{output_file}": {"multipart/form-data": _TRAIN_FORM},
}
"""Request bodies by "METHOD path"; a route not listed takes none."""

SUCCESS: dict[str, tuple[str, dict[str, str]]] = {
    "PUT /api/v1/models/{ref}": ("201", {JSON: "envelope"}),
    "POST /api/v1/models/{ref}": ("200", {JSON: "envelope"}),
    "POST /api/v1/train/{model}": ("202", {JSON: "envelope"}),
    "POST /api/v1/train/{model}/{output_file}": ("202", {JSON: "envelope"}),
    "GET /help": ("200", {TEXT: "text"}),
    "GET /metrics": ("200", {TEXT: "text"}),
    "GET /dashboard": ("200", {"text/html": "text"}),
    # dashboard.html, dashboard.js or dashboard.css: the page is served under its own name too.
    "GET /dashboard/{file}": (
        "200",
        {"text/html": "text", "text/javascript": "text", "text/css": "text"},
    ),
    "GET /dashboard/vendor/{package}/{file}": (
        "200",
        {"text/javascript": "text", "text/css": "text", "text/plain": "text"},
    ),
    "GET /docs": ("200", {"text/html": "text"}),
    "GET /api/v1/events": ("200", {"text/event-stream": "text"}),
    "GET /api/v1/models/{ref}/download": ("200", {BINARY: "text"}),
    "GET /api/v1/train/{job}/logs": ("200", {TEXT: "text"}),
    "POST /v2/models/{model}/infer": ("200", {JSON: "object", BINARY: "text"}),
    "POST /v2/models/{model}/versions/{version}/infer": ("200", {JSON: "object", BINARY: "text"}),
    "GET /openapi.json": ("200", {JSON: "object"}),
    "POST /v2/repository/index": ("200", {JSON: "array"}),
}
"""Success status and media types where they are not 200 and JSON (envelope or /v2 object)."""

QUERY_PARAMETERS: dict[str, list[dict[str, Any]]] = {
    "GET /api/v1/events/history": [
        {
            "name": "limit",
            "in": "query",
            "description": "how many of the last events (default 50)",
            "schema": {"type": "integer", "minimum": 1, "maximum": 1000},
        }
    ],
    "GET /api/v1/cluster/series": [
        {
            "name": "since",
            "in": "query",
            "description": "only the samples after this Unix time",
            "schema": {"type": "number", "minimum": 0},
        }
    ],
}
"""Query parameters by "METHOD path", where a route takes some."""

_SCHEMAS = {
    "envelope": ENVELOPE,
    "object": OBJECT,
    "array": {"type": "array", "items": OBJECT},
    "text": {"type": "string"},
}
_PARAMETER = re.compile(r"\{(\w+)\}")


def _responses(route: Route, key: str) -> dict[str, Any]:
    oip = route.path == OIP_PREFIX or route.path.startswith(OIP_PREFIX + "/")
    default_kind = "object" if oip else "envelope"
    status, media = SUCCESS.get(key, ("200", {JSON: default_kind}))
    error = OIP_ERROR if oip else ENVELOPE
    return {
        status: {
            "description": route.summary,
            "content": {m: {"schema": _SCHEMAS[kind]} for m, kind in media.items()},
        },
        "default": {
            "description": "an error: 4xx for bad input, 5xx when the mesh cannot answer",
            "content": {JSON: {"schema": error}},
        },
    }


def _operation(route: Route) -> dict[str, Any]:
    key = f"{route.method} {route.path}"
    scope = route.scope or Scope.ADMIN
    operation: dict[str, Any] = {
        "operationId": key,
        "summary": route.summary,
        "responses": _responses(route, key),
        "x-scope": scope.value,
    }
    names = _PARAMETER.findall(route.path)
    parameters = [
        {"name": n, "in": "path", "required": True, "schema": {"type": "string"}} for n in names
    ] + QUERY_PARAMETERS.get(key, [])
    if parameters:
        operation["parameters"] = parameters
    if scope is Scope.PUBLIC:
        operation["security"] = []
    else:
        operation["security"] = [{"bearer": [scope.value]}]
    if key in REQUEST_BODIES:
        operation["requestBody"] = {
            "required": key == "PUT /api/v1/models/{ref}" or key.startswith("POST /api/v1/train/"),
            "content": {m: {"schema": s} for m, s in REQUEST_BODIES[key].items()},
        }
    return operation


def openapi_document(routes: tuple[Route, ...], version: str) -> dict[str, Any]:
    """The document for `routes`; `x-scope` on each operation is the API key scope it needs."""
    paths: dict[str, dict[str, Any]] = {}
    for route in routes:
        paths.setdefault(route.path, {})[route.method.lower()] = _operation(route)
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "MLBuffet",
            "version": version,
            "description": "ONNX model server on a NATS mesh; see docs/rest-api.md and docs/v2.md.",
        },
        "components": {
            "securitySchemes": {
                "bearer": {
                    "type": "http",
                    "scheme": "bearer",
                    "description": "An API key (docs/security.md); only when keys are configured.",
                }
            }
        },
        "paths": paths,
    }
