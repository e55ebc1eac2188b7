"""JSON `values` -> input tensors, shaped and typed for the model's signature.

The original API takes `{"values": [...]}`: one row (`[2, 5, 1, 4]`), a batch
(`[[...], [...]]`), nested lists for N-d inputs, or a map of input names for
models with several inputs. A row without its batch dimension gets one. A null
is a missing value: NaN in a floating-point input, refused in any other.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

import numpy as np
import numpy.typing as npt

from mlbuffet.protocol import tensors
from mlbuffet.protocol.errors import UnprocessableError
from mlbuffet.protocol.inference import Tensor
from mlbuffet.protocol.records import DYNAMIC, Signature, TensorSpec


def arrays_from_values(values: Any, signature: Signature) -> dict[str, npt.NDArray[Any]]:
    """The input arrays by name, typed and shaped; UnprocessableError names what does not fit."""
    specs = signature.inputs
    if isinstance(values, Mapping):
        by_name = {spec.name: spec for spec in specs}
        unknown = [name for name in values if name not in by_name]
        if unknown:
            raise UnprocessableError(
                f"unknown input {', '.join(map(repr, unknown))}; the model takes "
                + ", ".join(s.describe() for s in specs)
            )
        missing = [s.describe() for s in specs if s.name not in values]
        if missing:
            raise UnprocessableError("missing input " + ", ".join(missing))
        given = dict(values)
    elif len(specs) == 1:
        given = {specs[0].name: values}
    else:
        raise UnprocessableError(
            f"the model takes {len(specs)} inputs; give values as a map of input names: "
            + ", ".join(s.describe() for s in specs)
        )
    return {spec.name: shaped(array_from_values(given[spec.name], spec), spec) for spec in specs}


def tensors_from_values(values: Any, signature: Signature) -> tuple[Tensor, ...]:
    """The request's input tensors; UnprocessableError names what does not fit and what would."""
    if len(signature.inputs) == 1 and isinstance(values, list):
        tensor = _plain_float_tensor(values, signature.inputs[0])
        if tensor is not None:
            return (tensor,)
    return checked_tensors_from_values(values, signature)


def checked_tensors_from_values(values: Any, signature: Signature) -> tuple[Tensor, ...]:
    """tensors_from_values without the fast path: every check, one by one."""
    return tuple(
        _tensor(spec, array)
        for spec, array in zip(
            signature.inputs, arrays_from_values(values, signature).values(), strict=True
        )
    )


FLOAT_TARGETS = {name: tensors.DTYPES[name] for name in ("FP16", "FP32", "FP64")}
_NUMBER_KINDS = "iuf"


def _plain_float_tensor(raw: list[Any], spec: TensorSpec) -> Tensor | None:
    """The common request (numbers for one float input) in a handful of numpy calls; None
    sends anything else, or anything doubtful (NaN, infinity, overflow), to the full checks.

    Every step of the full path costs a numpy call of about a microsecond on an array of
    four elements; here the checks are folded: the kind once, the shape once, and one sum
    whose finiteness says that no value became infinite in the cast.
    """
    dtype = FLOAT_TARGETS.get(spec.datatype)
    if dtype is None:
        return None
    try:
        array = np.array(raw)
    except (ValueError, TypeError, OverflowError):
        return None
    if array.dtype.kind not in _NUMBER_KINDS or array.size == 0:
        return None
    shape = array.shape
    want = spec.shape
    if len(shape) == len(want) - 1 and want[0] in (DYNAMIC, 1):
        shape = (1, *shape)
    if len(shape) != len(want) or any(
        w != DYNAMIC and w != g for w, g in zip(want, shape, strict=True)
    ):
        return None
    with np.errstate(over="ignore", invalid="ignore"):
        cast = array.astype(dtype)
        if not math.isfinite(cast.sum()):
            return None
    return Tensor(spec.name, spec.datatype, tuple(map(int, shape)), cast.tobytes())


def _tensor(spec: TensorSpec, array: npt.NDArray[Any]) -> Tensor:
    # The array already has the spec's dtype: encode it without looking the datatype up again.
    if spec.datatype == tensors.BYTES:
        data = tensors.encode_bytes_elements(array.reshape(-1))
    else:
        data = np.ascontiguousarray(array).tobytes()
    return Tensor(
        name=spec.name,
        datatype=spec.datatype,
        shape=tuple(int(d) for d in array.shape),
        data=data,
    )


def array_from_values(raw: Any, spec: TensorSpec) -> npt.NDArray[Any]:
    if not isinstance(raw, list | int | float | bool | str):
        raise UnprocessableError(
            f"input {spec.name!r}: values must be a number, a string or a list"
        )
    if spec.datatype == tensors.BYTES:
        array = _rectangular(raw, spec, dtype=object)
        if not all(isinstance(v, str) for v in array.flat):
            raise UnprocessableError(f"input {spec.name!r} takes strings")
        return array
    dtype = tensors.DTYPES.get(spec.datatype)
    if dtype is None:
        raise UnprocessableError(
            f"input {spec.name!r} is a {spec.onnx_type}, which JSON values cannot fill"
        )
    array = _rectangular(raw, spec)
    if array.size == 0:
        return array.astype(dtype)
    if array.dtype.kind not in "biuf":
        raise UnprocessableError(f"input {spec.name!r} takes numbers ({spec.datatype})")
    if dtype.kind == "b":
        if array.dtype.kind != "b":
            raise UnprocessableError(f"input {spec.name!r} takes true/false values")
        return array
    if dtype.kind in "iu":
        if array.dtype.kind == "f":
            if not np.all(np.isfinite(array) & (array == np.round(array))):
                raise UnprocessableError(
                    f"input {spec.name!r} takes whole numbers ({spec.datatype})"
                )
            if np.abs(array).max() >= 2**53:
                # numpy made floats of integers beyond int64; Python ints keep them exact.
                array = np.array(raw, dtype=object)
        limits = np.iinfo(dtype)
        if array.min() < limits.min or array.max() > limits.max:
            raise UnprocessableError(
                f"input {spec.name!r}: values must be within {limits.min}..{limits.max} ({spec.datatype})"
            )
        return array.astype(dtype)
    if _fits(array, dtype):
        return array.astype(dtype)
    with np.errstate(over="ignore"):
        cast = array.astype(dtype)
    if not np.array_equal(np.isfinite(cast), np.isfinite(array)):
        raise UnprocessableError(f"input {spec.name!r}: values beyond the range of {spec.datatype}")
    return cast


def _fits(array: npt.NDArray[Any], target: np.dtype[Any]) -> bool:
    """Whether every value of `array` is finite and within float `target`'s range: the
    common case, checked cheaply so that only the rest pays for the full comparison.

    JSON numbers arrive as int64 (within float32's range) or float64. A NaN
    makes the maximum NaN, the comparison False, and the full check decide."""
    if array.dtype.kind in "biu" and target.itemsize >= 4:
        return True
    limit = float(np.finfo(target).max)
    if array.dtype.kind in "biu":
        # Not np.abs: the absolute value of int64's minimum overflows to itself (negative).
        return bool(-limit <= array.min() and array.max() <= limit)
    return bool(np.abs(array).max() <= limit)


def _rectangular(raw: Any, spec: TensorSpec, dtype: Any = None) -> npt.NDArray[Any]:
    try:
        array = np.array(raw, dtype=dtype)
    except (ValueError, TypeError, OverflowError):
        array = None
    if array is not None and dtype is None and array.dtype == object:
        array = _with_missing_values(raw, array, spec)
    if array is None or (dtype is None and array.dtype == object):
        raise UnprocessableError(
            f"input {spec.name!r}: values must be a rectangular array of numbers "
            "(every row the same length)"
        )
    if dtype is object:
        # np.array builds nested object arrays from ragged lists; check every leaf is a scalar.
        if any(isinstance(v, list) for v in array.flat):
            raise UnprocessableError(f"input {spec.name!r}: values must be a rectangular array")
    return array


def _with_missing_values(
    raw: Any, array: npt.NDArray[Any], spec: TensorSpec
) -> npt.NDArray[Any] | None:
    """Numbers with nulls: NaN where a null is, for floating-point inputs only.

    JSON has no NaN; null is how a missing value is written (and how outputs show
    NaN). Only lists that hold nulls come here, off the fast path. None: not numbers.
    """
    leaves = list(array.flat)
    if not any(v is None for v in leaves):
        return None
    if tensors.DTYPES.get(spec.datatype, np.dtype(object)).kind != "f":
        raise UnprocessableError(
            f"input {spec.name!r} is {spec.datatype}: null (a missing value, NaN) is only "
            "for floating-point inputs"
        )
    if not all(v is None or type(v) in (int, float) for v in leaves):
        return None
    try:
        return np.array(raw, dtype=np.float64)
    except (ValueError, TypeError, OverflowError):
        return None


def shaped(array: npt.NDArray[Any], spec: TensorSpec) -> npt.NDArray[Any]:
    """Add the batch dimension to a single row; check the rank and fixed dimensions."""
    rank = len(spec.shape)
    if array.ndim == rank - 1 and rank > 0 and spec.shape[0] in (DYNAMIC, 1):
        array = array[np.newaxis, ...]
    if array.ndim != rank or any(
        want not in (DYNAMIC, got) for want, got in zip(spec.shape, array.shape, strict=True)
    ):
        raise UnprocessableError(
            f"input {spec.name!r}: values have shape {list(array.shape)}; the model expects "
            f"{list(spec.shape)} (-1: any size)"
        )
    return array
