"""Inference outputs -> JSON-ready values (the gateway's answers, the CLI's --json)."""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

import numpy as np
import numpy.typing as npt

from mlbuffet.protocol import tensors
from mlbuffet.protocol.inference import ObjectOutput, Output


def to_json(output: Output) -> Any:
    """A tensor as nested lists, an object output as lists and maps with string keys.

    JSON has no NaN or infinity: such values become null.
    """
    if isinstance(output, ObjectOutput):
        return jsonable(output.value)
    return array_to_json(tensors.decode_array(output.datatype, output.shape, output.data))


def array_to_json(array: npt.NDArray[Any]) -> Any:
    """A decoded tensor as nested lists; BYTES elements as text, NaN and infinity as null."""
    if array.dtype.kind in "OSU":
        return (
            np.vectorize(_text, otypes=[object])(array).tolist() if array.size else array.tolist()
        )
    if array.dtype.kind == "f" and not np.all(np.isfinite(array)):
        return jsonable(array.astype(np.float64).tolist())
    return array.tolist()


def _text(raw: bytes | str) -> str:
    return raw if isinstance(raw, str) else raw.decode("utf-8", errors="replace")


def jsonable(value: Any) -> Any:
    """Plain lists and maps with string keys, ready for json.dumps (numpy arrays included)."""
    # What msgpack gives (a ZipMap's list of {label: probability}) first, by exact type:
    # the isinstance checks below, ABCs among them, would run on every leaf.
    kind = type(value)
    if kind is float:
        return value if math.isfinite(value) else None
    if kind is int or kind is str or value is None:
        return value
    if kind is dict:
        return {str(k): jsonable(v) for k, v in value.items()}
    if kind is list:
        return [jsonable(v) for v in value]
    if isinstance(value, np.ndarray):
        return array_to_json(value)
    if isinstance(value, np.generic):
        return jsonable(value.item())
    if isinstance(value, Mapping):
        return {str(k): jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [jsonable(v) for v in value]
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, bytes):
        return _text(value)
    return value
