"""Triton's model configuration extension: a model's config JSON, made from its registry record.

Triton clients (perf_analyzer above all) read it to learn how to batch and
what to send. A model takes batches when every tensor it has takes any
number of rows in dimension 0; Triton then lists dimensions without that
first one and says how many rows a request may carry in `max_batch_size`.
"""

from __future__ import annotations

from typing import Any

from gateway.oip.metadata import PLATFORM
from mlbuffet.protocol import tensors
from mlbuffet.protocol.records import (
    DYNAMIC,
    MAX_BATCH_SIZE_LIMIT,
    ModelRecord,
    ModelSettings,
    Signature,
    TensorSpec,
)

BACKEND = "onnxruntime"

DATA_TYPES = {
    **{datatype: f"TYPE_{datatype}" for datatype in tensors.DATATYPES},
    tensors.BYTES: "TYPE_STRING",
    "OBJECT": "TYPE_STRING",
}
"""Wire datatype -> Triton's config data_type (BYTES is TYPE_STRING there; OBJECT outputs
are served as BYTES of JSON text, docs/v2.md)."""


def takes_batches(signature: Signature) -> bool:
    """Every input and tensor output has a dynamic first dimension (non-tensors: one per row)."""
    specs = (*signature.inputs, *signature.outputs)
    return all(s.datatype == "OBJECT" or (s.shape and s.shape[0] == DYNAMIC) for s in specs)


def max_batch_size(settings: ModelSettings, batched: bool) -> int:
    """Dynamic batching's own limit; without it, the most rows the registry lets a batch hold.

    Requests are not cut to this size (only NATS max_payload bounds them):
    it tells clients that rows may be sent together, which 0 would deny.
    """
    if not batched:
        return 0
    return settings.max_batch_size if settings.batching else MAX_BATCH_SIZE_LIMIT


def tensor_config(spec: TensorSpec, batched: bool) -> dict[str, Any]:
    if spec.datatype == "OBJECT":
        dims: list[int] = [] if batched else [DYNAMIC]  # a sequence: one JSON text per row
    else:
        dims = list(spec.shape[1:] if batched else spec.shape)
    config: dict[str, Any] = {"name": spec.name, "data_type": DATA_TYPES[spec.datatype]}
    if batched and not dims:
        # One value per row: Triton spells it dims [1] reshaped to a scalar.
        config.update(dims=[1], reshape={"shape": []})
    else:
        config["dims"] = dims
    return config


def model_config(record: ModelRecord, version: int | None) -> dict[str, Any]:
    """The config of one version (None: the default), as Triton's GET .../config answers it."""
    signature = record.version(version).signature
    batched = takes_batches(signature)
    settings = record.settings
    config: dict[str, Any] = {
        "name": record.name,
        "platform": PLATFORM,
        "backend": BACKEND,
        "max_batch_size": max_batch_size(settings, batched),
        "input": [tensor_config(s, batched) for s in signature.inputs],
        "output": [tensor_config(s, batched) for s in signature.outputs],
    }
    if batched and settings.batching:
        config["dynamic_batching"] = {
            "preferred_batch_size": list(settings.preferred_batch_sizes),
            "max_queue_delay_microseconds": settings.max_queue_delay_us,
        }
    return config
