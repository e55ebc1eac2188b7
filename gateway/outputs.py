"""Inference outputs -> JSON-ready values."""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

import numpy as np

from mlbuffet.protocol import tensors
from mlbuffet.protocol.messages import ObjectOutput, Output


def to_json(output: Output) -> Any:
    """A tensor as nested lists, an object output as lists and maps with string keys.

    JSON has no NaN or infinity: such values become null.
    """
    if isinstance(output, ObjectOutput):
        return _jsonable(output.value)
    array = tensors.decode_array(output.datatype, output.shape, output.data)
    if output.datatype == tensors.BYTES:
        return (
            np.vectorize(_text, otypes=[object])(array).tolist() if array.size else array.tolist()
        )
    if array.dtype.kind == "f" and not np.all(np.isfinite(array)):
        return _jsonable(array.astype(np.float64).tolist())
    return array.tolist()


def _text(raw: bytes) -> str:
    return raw.decode("utf-8", errors="replace")


def _jsonable(value: Any) -> Any:
    if isinstance(value, Mapping):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_jsonable(v) for v in value]
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, bytes):
        return _text(value)
    return value
