"""Predictions: JSON values or an image in, the model's outputs back in the original envelope."""

from __future__ import annotations

from typing import Any

from aiohttp import web

from gateway.admission import INFERENCE_SLOTS, request_timeout
from gateway.envelope import reply
from gateway.model_readiness import require_serving
from gateway.routes.common import json_body, json_object, mesh_of, model_ref
from gateway.routes.table import Route
from gateway.uploads import read_form, spool_folder
from mlbuffet.apikeys import Scope
from mlbuffet.codecs.images import image_input, image_tensor
from mlbuffet.codecs.outputs import to_json
from mlbuffet.codecs.values import tensors_from_values
from mlbuffet.protocol.errors import UnprocessableError, UnsupportedMediaTypeError
from mlbuffet.protocol.inference import InferRequest, Tensor
from mlbuffet.protocol.records import Signature

IMAGE_FIELDS = ("file", "path")
"""Form fields that may carry the image: `file` as in the original README, or `path`."""
BINARY_TYPES = ("application/octet-stream", "")


async def predict(request: web.Request) -> web.Response:
    timeout_s = request_timeout(request)
    with request.app[INFERENCE_SLOTS]:
        return await _predict(request, timeout_s)


async def _predict(request: web.Request, timeout_s: float) -> web.Response:
    ref = model_ref(request)
    mesh = mesh_of(request)
    record = require_serving(await mesh.view.get(ref.name))
    version = record.version(ref.version)
    if request.content_type.startswith("multipart/"):
        inputs = await _image_inputs(request, version.signature)
    else:
        body = json_object(await json_body(request), '{"values": [...]}')
        if "values" not in body:
            raise UnprocessableError("No test observation provided (values:[...])")
        inputs = tensors_from_values(body["values"], version.signature)
    response = await mesh.infer(
        InferRequest(model=ref.name, version=ref.version, inputs=inputs), timeout_s
    )
    outputs = {output.name: to_json(output) for output in response.outputs}
    first = next(iter(outputs.values()), None)
    return reply(
        200,
        "Prediction successful",
        values=first,
        outputs=outputs,
        model=response.model,
        version=response.version,
        node=response.node,
    )


async def _image_inputs(request: web.Request, signature: Signature) -> tuple[Tensor, ...]:
    mesh = mesh_of(request)
    with spool_folder(mesh.config.tmp_dir) as folder:
        form = await read_form(
            request, folder, file_limit=mesh.config.max_request_bytes, what="the image"
        )
        image = next((form.files[f] for f in IMAGE_FIELDS if f in form.files), None)
        if image is None:
            raise UnprocessableError("No image provided: send it in the form field 'file'")
        kind = image.content_type.split(";")[0].strip().lower()
        if not kind.startswith("image/") and kind not in BINARY_TYPES:
            raise UnsupportedMediaTypeError(
                f"Filetype {kind} is not allowed for predictions; send an image"
            )
        data = image.path.read_bytes()
    options: dict[str, Any] = {**request.query, **form.fields}
    spec = image_input(signature, options.get("input"))
    return (image_tensor(data, spec, options.get("preprocess", "raw")),)


_SUMMARY = (
    'predict: JSON {"values": [...]} (a row, a batch, or {input: values}) or an image in the '
    "form field 'file'; <model>[:<version>]"
)
ROUTES = (
    Route("POST", "/api/v1/models/{ref}/prediction", predict, _SUMMARY, Scope.PREDICT),
    Route(
        "GET",
        "/api/v1/models/{ref}/prediction",
        predict,
        "the same with GET, as the original README shows",
        Scope.PREDICT,
    ),
)
