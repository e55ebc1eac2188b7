"""Server and model metadata documents, from the registry's records."""

from __future__ import annotations

from typing import Any

from mlbuffet.protocol import tensors
from mlbuffet.protocol.records import DYNAMIC, ModelRecord, TensorSpec

PLATFORM = "onnxruntime_onnx"
EXTENSIONS = ("binary_tensor_data", "model_repository", "model_configuration", "statistics")
"""OIP extensions this gateway implements (docs/v2.md)."""


def server_metadata(version: str) -> dict[str, Any]:
    return {"name": "mlbuffet", "version": version, "extensions": list(EXTENSIONS)}


def tensor_metadata(spec: TensorSpec) -> dict[str, Any]:
    """Non-tensor values (OBJECT) are served as BYTES of JSON text, one per sequence item."""
    if spec.datatype in tensors.DATATYPES:
        return {"name": spec.name, "datatype": spec.datatype, "shape": list(spec.shape)}
    return {"name": spec.name, "datatype": tensors.BYTES, "shape": [DYNAMIC]}


def model_metadata(record: ModelRecord, version: int | None) -> dict[str, Any]:
    """The metadata of one version (None: the default); `versions` lists them all."""
    signature = record.version(version).signature
    return {
        "name": record.name,
        "versions": [str(v) for v in sorted(record.versions)],
        "platform": PLATFORM,
        "inputs": [tensor_metadata(s) for s in signature.inputs],
        "outputs": [tensor_metadata(s) for s in signature.outputs],
    }
