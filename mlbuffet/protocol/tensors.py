"""The one codec between numpy arrays and wire tensors.

A wire tensor is `{"name", "datatype", "shape", "data"}` with `data` the raw
little-endian bytes of the array in C order, datatypes named as in the Open
Inference Protocol. BYTES tensors (strings) use the protocol's binary layout:
each element is a 4-byte little-endian length followed by its bytes.
"""

from __future__ import annotations

import math
import struct
from collections.abc import Iterable, Sequence
from typing import Any

import numpy as np
import numpy.typing as npt

from mlbuffet.protocol.errors import BadRequestError, UnprocessableError

DTYPES: dict[str, np.dtype[Any]] = {
    "BOOL": np.dtype(np.bool_),
    "INT8": np.dtype("<i1"),
    "INT16": np.dtype("<i2"),
    "INT32": np.dtype("<i4"),
    "INT64": np.dtype("<i8"),
    "UINT8": np.dtype("<u1"),
    "UINT16": np.dtype("<u2"),
    "UINT32": np.dtype("<u4"),
    "UINT64": np.dtype("<u8"),
    "FP16": np.dtype("<f2"),
    "FP32": np.dtype("<f4"),
    "FP64": np.dtype("<f8"),
}
"""Fixed-size datatypes and their little-endian numpy dtypes."""

BYTES = "BYTES"
DATATYPES = (*DTYPES, BYTES)
_DATATYPE_OF = {dtype: name for name, dtype in DTYPES.items()}
"""The datatype of an array in the machine's byte order at one lookup (others: by kind and size)."""

ONNX_TENSOR_TYPES: dict[str, str] = {
    "tensor(bool)": "BOOL",
    "tensor(int8)": "INT8",
    "tensor(int16)": "INT16",
    "tensor(int32)": "INT32",
    "tensor(int64)": "INT64",
    "tensor(uint8)": "UINT8",
    "tensor(uint16)": "UINT16",
    "tensor(uint32)": "UINT32",
    "tensor(uint64)": "UINT64",
    "tensor(float16)": "FP16",
    "tensor(float)": "FP32",
    "tensor(double)": "FP64",
    "tensor(string)": BYTES,
}
"""onnxruntime's type strings for tensors, mapped to wire datatypes."""

_LENGTH = struct.Struct("<I")

MAX_RANK = 64
"""numpy's limit on the number of dimensions."""
MAX_DIMENSION = np.iinfo(np.intp).max


def datatype_of(array: npt.NDArray[Any]) -> str:
    """The wire datatype of a numpy array (object and str arrays are BYTES)."""
    known = _DATATYPE_OF.get(array.dtype)
    if known is not None:
        return known
    kind = array.dtype.kind
    if kind in "OUS":
        return BYTES
    for name, dtype in DTYPES.items():
        if array.dtype.kind == dtype.kind and array.dtype.itemsize == dtype.itemsize:
            return name
    raise UnprocessableError(f"arrays of dtype {array.dtype} have no wire datatype")


def element_count(shape: Sequence[int]) -> int:
    return math.prod(shape)


def encode_array(array: npt.NDArray[Any]) -> tuple[str, list[int], bytes]:
    """Return (datatype, shape, data) for `array`."""
    datatype = datatype_of(array)
    shape = [int(d) for d in array.shape]
    if datatype == BYTES:
        return datatype, shape, encode_bytes_elements(array.reshape(-1))
    dtype = DTYPES[datatype]
    return datatype, shape, np.ascontiguousarray(array, dtype=dtype).tobytes()


def decode_array(datatype: str, shape: Sequence[int], data: bytes) -> npt.NDArray[Any]:
    """Return the numpy array of a wire tensor, checking that data and shape agree.

    Fixed-size types come back as a read-only view on `data`: no copy.
    """
    if any(not isinstance(d, int) or isinstance(d, bool) or d < 0 for d in shape):
        raise BadRequestError(f"invalid shape {list(shape)}: dimensions are non-negative integers")
    count = element_count(shape)
    if datatype == BYTES:
        return _reshape(decode_bytes_elements(data, count), shape)
    dtype = DTYPES.get(datatype)
    if dtype is None:
        raise BadRequestError(
            f"unknown datatype {datatype!r}; expected one of {', '.join(DATATYPES)}"
        )
    if len(data) != count * dtype.itemsize:
        raise BadRequestError(
            f"tensor data has {len(data)} bytes; shape {list(shape)} of {datatype} needs "
            f"{count * dtype.itemsize}"
        )
    return _reshape(np.frombuffer(data, dtype=dtype), shape)


def _reshape(flat: npt.NDArray[Any], shape: Sequence[int]) -> npt.NDArray[Any]:
    # numpy refuses more than 64 dimensions, and a dimension beyond its index
    # range even when another one is 0 (so the data check above passed).
    try:
        return flat.reshape(tuple(shape))
    except (ValueError, OverflowError):
        raise BadRequestError(
            f"invalid shape {list(shape)}: at most {MAX_RANK} dimensions of at most "
            f"{MAX_DIMENSION} elements each"
        ) from None


def encode_bytes_elements(elements: Iterable[Any]) -> bytes:
    """Length-prefixed concatenation of string/bytes elements (str is UTF-8 encoded)."""
    parts: list[bytes] = []
    for element in elements:
        if isinstance(element, str):
            raw = element.encode()
        elif isinstance(element, bytes | bytearray | memoryview):
            raw = bytes(element)
        else:
            # bytes(5) would be five zero bytes: refuse rather than send garbage.
            raise UnprocessableError(
                f"a BYTES element must be str or bytes, not {type(element).__name__}"
            )
        parts.append(_LENGTH.pack(len(raw)))
        parts.append(raw)
    return b"".join(parts)


def decode_bytes_elements(data: bytes, count: int) -> npt.NDArray[np.object_]:
    """Split length-prefixed BYTES data into exactly `count` bytes elements."""
    if count * _LENGTH.size > len(data):
        # Checked before allocating: a huge declared shape must not cost memory.
        raise BadRequestError(f"BYTES tensor data is too short for {count} elements")
    out = np.empty(count, dtype=object)
    offset = 0
    view = memoryview(data)
    for i in range(count):
        if offset + 4 > len(data):
            raise BadRequestError(f"BYTES tensor data ends after {i} of {count} elements")
        (length,) = _LENGTH.unpack_from(view, offset)
        offset += 4
        if offset + length > len(data):
            raise BadRequestError(f"BYTES tensor element {i} runs past the end of the data")
        out[i] = bytes(view[offset : offset + length])
        offset += length
    if offset != len(data):
        raise BadRequestError(
            f"BYTES tensor data has {len(data) - offset} bytes after {count} elements"
        )
    return out
