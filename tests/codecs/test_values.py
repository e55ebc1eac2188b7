"""JSON values -> tensors: the fast path for plain float inputs answers exactly as the full
checks do, or leaves the request to them."""

from __future__ import annotations

import numpy as np
import pytest

pytest.importorskip("hypothesis", reason="hypothesis is a test dependency (pip install hypothesis)")

from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from mlbuffet.codecs.values import checked_tensors_from_values, tensors_from_values
from mlbuffet.protocol.errors import UnprocessableError
from mlbuffet.protocol.records import Signature, TensorSpec
from mlbuffet.protocol.tensors import DTYPES

SPECS = [
    TensorSpec("x", datatype, shape, onnx_type)
    for datatype, onnx_type in (
        ("FP32", "tensor(float)"),
        ("FP64", "tensor(double)"),
        ("FP16", "tensor(float16)"),
        ("INT64", "tensor(int64)"),
    )
    for shape in ((-1, 4), (1, 2), (3,), (-1, 2, 2))
]

scalars = st.one_of(
    st.integers(min_value=-(2**70), max_value=2**70),
    st.floats(allow_nan=True, allow_infinity=True),
    st.booleans(),
    st.text(max_size=2),
    st.none(),
)
ragged = st.recursive(scalars, lambda inner: st.lists(inner, max_size=5), max_leaves=20)
rectangular = hnp.arrays(
    dtype=st.sampled_from([np.float64, np.int64]),
    shape=hnp.array_shapes(min_dims=1, max_dims=3, min_side=1, max_side=4),
    elements={"allow_nan": True, "allow_infinity": True},
).map(lambda array: array.tolist())
"""Mostly well-formed rows: the requests the fast path takes (and NaN, inf, overflow in them)."""
values = st.one_of(ragged, rectangular)


def outcome(convert, raw, signature):
    try:
        return convert(raw, signature)
    except UnprocessableError as exc:
        return ("refused", exc.status)


@settings(database=None, deadline=None, max_examples=400)
@given(values, st.sampled_from(SPECS))
def test_the_fast_path_answers_as_the_full_checks(raw, spec):
    signature = Signature(inputs=(spec,), outputs=())
    assert outcome(tensors_from_values, raw, signature) == outcome(
        checked_tensors_from_values, raw, signature
    )


@pytest.mark.parametrize(
    ("raw", "spec", "shape"),
    [
        ([2.0, 5.0, 1.0, 4.0], SPECS[0], (1, 4)),
        ([[2, 5, 1, 4], [1, 1, 1, 1]], SPECS[0], (2, 4)),
        ([1e300, 1.0, 1.0, 1.0], SPECS[4], (1, 4)),
    ],
)
def test_plain_rows_are_typed_and_batched(raw, spec, shape):
    (tensor,) = tensors_from_values(raw, Signature(inputs=(spec,), outputs=()))
    array = np.frombuffer(tensor.data, dtype=DTYPES[spec.datatype])
    assert tensor.shape == shape
    assert array.reshape(shape).tolist() == np.array(raw, dtype=np.float64).reshape(shape).tolist()


def test_a_float32_overflow_is_refused_by_the_full_checks():
    spec = SPECS[0]
    with pytest.raises(UnprocessableError, match="beyond the range"):
        tensors_from_values([1e300, 1.0, 1.0, 1.0], Signature(inputs=(spec,), outputs=()))


def test_int64s_minimum_is_out_of_float16s_range_not_a_silent_infinity():
    # np.abs(-2**63) is -2**63 again: the range check once let it through to an overflowing cast.
    spec = TensorSpec("x", "FP16", (-1,), "tensor(float16)")
    with pytest.raises(UnprocessableError, match="beyond the range"):
        tensors_from_values([-(2**63)], Signature(inputs=(spec,), outputs=()))
