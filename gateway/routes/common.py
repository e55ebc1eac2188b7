"""Request parsing shared by the route modules."""

from __future__ import annotations

from typing import Any

from aiohttp import web

from gateway.service import MESH, MeshLink
from mlbuffet.codecs.json_input import read_json
from mlbuffet.protocol.errors import BadRequestError, UnprocessableError
from mlbuffet.protocol.names import ModelRef, parse_model_name


def mesh_of(request: web.Request) -> MeshLink:
    return request.app[MESH]


def model_ref(request: web.Request) -> ModelRef:
    """The `<model>[:<version>|:default]` of the URL."""
    return ModelRef.parse(request.match_info["ref"])


def model_name(request: web.Request) -> str:
    """The `<model>` of the URL, where a version makes no sense."""
    raw = request.match_info["ref"]
    if ":" in raw:
        raise BadRequestError(f"{raw!r}: give a model name here, without a version")
    return parse_model_name(raw)


async def json_body(request: web.Request, *, required: bool = True) -> Any:
    """The JSON body; 400 if it is not strict JSON (mlbuffet.codecs.json_input), 422 if it is missing and required."""
    raw = await request.read()
    if not raw.strip():
        if required:
            raise UnprocessableError("No json data provided")
        return None
    return read_json(raw, "the body")


def json_object(body: Any, example: str) -> dict[str, Any]:
    if not isinstance(body, dict):
        raise UnprocessableError(f"the body must be a JSON object like {example}")
    return body
