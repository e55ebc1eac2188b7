"""The request-body parsers on arbitrary input: a value or a 4xx, and never an infinity.

Pure functions, no network: many examples cheaply. These are the steps every
JSON route chains (read_json, then the values codec or the OIP request
parser); tests/hostile/test_request_bodies.py sends the table of known-bad
bodies through the real gateway.
"""

from __future__ import annotations

import json
from typing import Any

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from gateway.oip.framing import split_body
from gateway.oip.infer import parse_request
from mlbuffet.codecs.json_input import read_json
from mlbuffet.codecs.values import tensors_from_values
from mlbuffet.protocol import tensors
from mlbuffet.protocol.errors import BadRequestError, MLBuffetError
from mlbuffet.protocol.inference import Tensor
from mlbuffet.protocol.records import Signature, TensorSpec
from tests.hostile.body_cases import json_values, leaves, not_finite, oip_documents, too_large


@settings(max_examples=300)
@given(st.binary(max_size=300))
def test_any_bytes_give_a_value_or_a_400_that_says_json(raw: bytes) -> None:
    try:
        read_json(raw, "the body")
    except BadRequestError as exc:
        assert "not valid JSON" in exc.message


@settings(max_examples=300)
@given(json_values)
def test_a_document_parses_exactly_when_it_has_no_nan_or_infinity(value: Any) -> None:
    text = json.dumps(value)  # allow_nan: writes NaN, Infinity, -Infinity
    try:
        parsed = read_json(text.encode(), "the body")
    except BadRequestError as exc:
        assert not_finite(value) or too_large(value), exc.message
        return
    assert not not_finite(value) and not not_finite(parsed)


SPECS = [
    TensorSpec("x", "FP32", (-1, 4), "tensor(float)"),
    TensorSpec("x", "FP16", (-1, 2), "tensor(float16)"),
    TensorSpec("x", "FP64", (2,), "tensor(double)"),
    TensorSpec("x", "INT64", (-1, 2), "tensor(int64)"),
    TensorSpec("x", "UINT8", (-1, -1, 2), "tensor(uint8)"),
    TensorSpec("x", "BOOL", (-1,), "tensor(bool)"),
    TensorSpec("x", "BYTES", (-1, 2), "tensor(string)"),
]


def finite_where_given(tensor: Tensor, raw: Any) -> None:
    """A float tensor holds NaN only where the values had null, and never an infinity."""
    if tensor.datatype not in ("FP16", "FP32", "FP64"):
        return
    array = tensors.decode_array(tensor.datatype, tensor.shape, tensor.data)
    assert not np.isinf(array).any(), (raw, array)
    if np.isnan(array).any():
        assert None in leaves(raw), (raw, array)


@pytest.mark.parametrize("spec", SPECS, ids=lambda s: s.datatype)
@settings(max_examples=120)
@given(value=json_values)
def test_rest_values_give_tensors_without_infinities_or_a_422(spec: TensorSpec, value: Any) -> None:
    try:
        parsed = read_json(json.dumps(value).encode(), "the body")
    except BadRequestError:
        return  # the table and the property above cover refused documents
    signature = Signature(inputs=(spec,), outputs=())
    try:
        (tensor,) = tensors_from_values(parsed, signature)
    except MLBuffetError as exc:
        assert exc.status == 422 and exc.message
        return
    finite_where_given(tensor, parsed)


@settings(max_examples=300)
@given(oip_documents())
def test_v2_requests_give_tensors_without_infinities_or_a_400(document: dict[str, Any]) -> None:
    body = json.dumps(document).encode()
    try:
        framed = split_body(body, None)
        request, _ = parse_request(framed, "m", None)
    except MLBuffetError as exc:
        assert exc.status == 400 and exc.message
        return
    assert not not_finite(document)
    for tensor in request.inputs:
        finite_where_given(tensor, document)
