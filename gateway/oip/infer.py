"""An OIP inference request -> the mesh's InferRequest, and the InferResponse -> OIP.

Which outputs come back in binary is decided per output: its own
`parameters.binary_data` if it was requested by name, else the request's
`parameters.binary_data_output` (false by default).
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from gateway.oip.framing import BinaryReader, Framed
from gateway.oip.tensors import input_tensor, output_document, parameters_of
from mlbuffet.protocol.errors import BadRequestError
from mlbuffet.protocol.inference import InferRequest, InferResponse


@dataclass(frozen=True, slots=True)
class OutputPlan:
    """How to render the answer: which outputs in binary, and the id to echo."""

    binary_default: bool = False
    binary: Mapping[str, bool] = field(default_factory=dict)
    id: str | None = None

    def is_binary(self, name: str) -> bool:
        return self.binary.get(name, self.binary_default)


def _flag(parameters: Mapping[str, Any], key: str, what: str) -> bool | None:
    value = parameters.get(key)
    if value is not None and not isinstance(value, bool):
        raise BadRequestError(f"{what}: parameters.{key} must be true or false")
    return value


def parse_request(
    framed: Framed, model: str, version: int | None
) -> tuple[InferRequest, OutputPlan]:
    document = framed.document
    if not isinstance(document, Mapping):
        raise BadRequestError('the inference request must be a JSON object with "inputs"')
    request_id = document.get("id")
    if request_id is not None and not isinstance(request_id, str):
        raise BadRequestError("'id' must be a string")
    raw_inputs = document.get("inputs")
    if not isinstance(raw_inputs, list) or not raw_inputs:
        raise BadRequestError("'inputs' must be a non-empty list of tensors")
    reader = BinaryReader(framed.binary)
    inputs = tuple(input_tensor(raw, reader) for raw in raw_inputs)
    reader.check_consumed()

    binary_default = _flag(parameters_of(document, "request"), "binary_data_output", "request")
    names: tuple[str, ...] | None = None
    binary: dict[str, bool] = {}
    raw_outputs = document.get("outputs")
    if raw_outputs is not None:
        if not isinstance(raw_outputs, list):
            raise BadRequestError("'outputs' must be a list of {\"name\": ...} objects")
        wanted = []
        for raw in raw_outputs:
            if not isinstance(raw, Mapping) or not isinstance(raw.get("name"), str):
                raise BadRequestError("every requested output must be an object with a 'name'")
            name = raw["name"]
            wanted.append(name)
            flag = _flag(parameters_of(raw, f"output {name!r}"), "binary_data", f"output {name!r}")
            if flag is not None:
                binary[name] = flag
        if len(set(wanted)) != len(wanted):
            raise BadRequestError("an output is requested twice")
        names = tuple(wanted) or None
    request = InferRequest(
        model=model, version=version, inputs=inputs, outputs=names, id=request_id
    )
    return request, OutputPlan(bool(binary_default), binary, request_id)


def render_response(response: InferResponse, plan: OutputPlan) -> tuple[bytes, list[bytes]]:
    """The JSON document and the binary chunks that follow it (none: a plain JSON answer)."""
    outputs, chunks = [], []
    for output in response.outputs:
        document, chunk = output_document(output, plan.is_binary(output.name))
        outputs.append(document)
        if chunk is not None:
            chunks.append(chunk)
    body: dict[str, Any] = {
        "model_name": response.model,
        "model_version": str(response.version),
        "outputs": outputs,
    }
    if plan.id is not None:
        body["id"] = plan.id
    encoded = json.dumps(body, ensure_ascii=False, allow_nan=False, separators=(",", ":"))
    return encoded.encode(), chunks
