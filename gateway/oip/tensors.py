"""OIP tensors <-> wire tensors.

Input data comes as JSON (`data`, flat or nested, row-major; null is NaN in a
floating-point tensor, as NaN is rendered null in outputs) or as a slice of
the binary section (`parameters.binary_data_size`); binary data is already in
the wire layout (little-endian, C order, BYTES elements with 4-byte length
prefixes), so it is checked and passed on untouched.

Non-tensor outputs (scikit-learn's ZipMap: a sequence of maps) are rendered
as BYTES tensors of JSON text, one element per item of the sequence, so OIP
clients can read them like any string output.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping
from typing import Any

import numpy as np
import numpy.typing as npt

from gateway.oip.framing import BinaryReader
from mlbuffet.codecs.outputs import to_json
from mlbuffet.protocol import tensors
from mlbuffet.protocol.errors import BadRequestError
from mlbuffet.protocol.inference import Output, Tensor

BINARY_DATA_SIZE = "binary_data_size"
_FLOAT_ELEMENTS = (int, float, type(None))
"""JSON elements of a floating-point tensor: null is a missing value, NaN (docs/v2.md)."""


def _field(raw: Mapping[str, Any], key: str, kind: type | tuple[type, ...], what: str) -> Any:
    value = raw.get(key)
    if not isinstance(value, kind) or (isinstance(value, bool) and kind is not bool):
        raise BadRequestError(f"{what}: {key!r} is missing or of the wrong type")
    return value


def parameters_of(raw: Mapping[str, Any], what: str) -> Mapping[str, Any]:
    parameters = raw.get("parameters")
    if parameters is None:
        return {}
    if not isinstance(parameters, Mapping):
        raise BadRequestError(f"{what}: 'parameters' must be an object")
    return parameters


def input_tensor(raw: Any, reader: BinaryReader) -> Tensor:
    """One request input as a wire tensor; BadRequestError says what is malformed."""
    if not isinstance(raw, Mapping):
        raise BadRequestError("every input must be an object with name, shape, datatype, data")
    name = _field(raw, "name", str, "input")
    what = f"input {name!r}"
    datatype = _field(raw, "datatype", str, what)
    if datatype not in tensors.DATATYPES:
        raise BadRequestError(
            f"{what}: unknown datatype {datatype!r}; expected one of {', '.join(tensors.DATATYPES)}"
        )
    shape = _field(raw, "shape", list, what)
    if len(shape) > tensors.MAX_RANK or not all(
        isinstance(d, int) and not isinstance(d, bool) and 0 <= d <= tensors.MAX_DIMENSION
        for d in shape
    ):
        raise BadRequestError(
            f"{what}: shape {shape} must be a list of at most {tensors.MAX_RANK} non-negative sizes"
        )
    size = parameters_of(raw, what).get(BINARY_DATA_SIZE)
    if size is not None:
        if not isinstance(size, int) or isinstance(size, bool) or size < 0:
            raise BadRequestError(f"{what}: {BINARY_DATA_SIZE} must be a non-negative integer")
        if "data" in raw:
            raise BadRequestError(f"{what}: give either 'data' or {BINARY_DATA_SIZE}, not both")
        data = reader.take(size, name)
        tensors.decode_array(datatype, shape, data)  # checks size against shape
    else:
        if "data" not in raw:
            raise BadRequestError(f"{what} has no 'data' (nor parameters.{BINARY_DATA_SIZE})")
        data = json_data(raw["data"], datatype, shape, what)
    return Tensor(name=name, datatype=datatype, shape=tuple(shape), data=data)


def json_data(raw: Any, datatype: str, shape: list[int], what: str) -> bytes:
    """The wire bytes of a JSON `data` field: element count, types and ranges checked."""
    flat = _flatten(raw, what)
    count = math.prod(shape)
    if len(flat) != count:
        raise BadRequestError(
            f"{what}: shape {shape} needs {count} elements, 'data' has {len(flat)}"
        )
    if datatype == tensors.BYTES:
        if not all(isinstance(v, str) for v in flat):
            raise BadRequestError(f"{what}: BYTES data must be strings")
        return tensors.encode_bytes_elements(flat)
    return _numeric(flat, datatype, what).tobytes()


def _numeric(flat: list[Any], datatype: str, what: str) -> npt.NDArray[Any]:
    dtype = tensors.DTYPES[datatype]
    if dtype.kind == "b":
        if not all(type(v) is bool for v in flat):
            raise BadRequestError(f"{what}: BOOL data must be true or false")
        return np.array(flat, dtype=dtype)
    if dtype.kind in "iu":
        if not all(type(v) is int for v in flat):
            raise BadRequestError(
                f"{what}: {datatype} data must be whole numbers (null, a missing value, is "
                "only for floating-point inputs)"
            )
        limits = np.iinfo(dtype)
        if flat and (min(flat) < limits.min or max(flat) > limits.max):
            raise BadRequestError(
                f"{what}: {datatype} values must be within {limits.min}..{limits.max}"
            )
        return np.array(flat, dtype=dtype)
    if not all(type(v) in _FLOAT_ELEMENTS for v in flat):
        raise BadRequestError(f"{what}: {datatype} data must be numbers (null: a missing value)")
    try:
        wide = np.array(flat, dtype=np.float64)
    except OverflowError:
        raise BadRequestError(f"{what}: a value is beyond the range of {datatype}") from None
    with np.errstate(over="ignore"):
        cast = wide.astype(dtype)
    if not np.array_equal(np.isfinite(cast), np.isfinite(wide)):
        raise BadRequestError(f"{what}: a value is beyond the range of {datatype}")
    return cast


def _flatten(raw: Any, what: str) -> list[Any]:
    """Row-major elements of flat or nested lists (a lone scalar is one element)."""
    if not isinstance(raw, list):
        return [raw]
    if not any(isinstance(v, list) for v in raw):
        return raw
    flat: list[Any] = []
    stack = [iter(raw)]
    while stack:
        for value in stack[-1]:
            if isinstance(value, list):
                if len(stack) > tensors.MAX_RANK:
                    raise BadRequestError(f"{what}: 'data' is nested too deeply")
                stack.append(iter(value))
                break
            flat.append(value)
        else:
            stack.pop()
    return flat


def as_tensor(output: Output) -> Tensor:
    """A wire tensor for any output: non-tensor outputs become BYTES of JSON text."""
    if isinstance(output, Tensor):
        return output
    value = to_json(output)
    items = value if isinstance(value, list) else [value]
    texts = [json.dumps(item, ensure_ascii=False, allow_nan=False) for item in items]
    return Tensor(
        name=output.name,
        datatype=tensors.BYTES,
        shape=(len(texts),),
        data=tensors.encode_bytes_elements(texts),
    )


def output_document(output: Output, binary: bool) -> tuple[dict[str, Any], bytes | None]:
    """The output's JSON object, and its bytes if they go in the binary section."""
    tensor = as_tensor(output)
    document: dict[str, Any] = {
        "name": tensor.name,
        "datatype": tensor.datatype,
        "shape": list(tensor.shape),
    }
    if binary:
        document["parameters"] = {BINARY_DATA_SIZE: len(tensor.data)}
        return document, tensor.data
    document["data"] = _json_values(tensor)
    return document, None


def _json_values(tensor: Tensor) -> list[Any]:
    array = tensors.decode_array(tensor.datatype, tensor.shape, tensor.data).reshape(-1)
    if tensor.datatype == tensors.BYTES:
        return [v.decode("utf-8", errors="replace") for v in array]
    if array.dtype.kind == "f" and not np.all(np.isfinite(array)):
        # JSON has no NaN or infinity: null, as the binary extension keeps them exact.
        return [v if math.isfinite(v) else None for v in array.tolist()]
    values: list[Any] = array.tolist()
    return values
