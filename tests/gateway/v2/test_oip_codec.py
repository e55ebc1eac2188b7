"""The OIP codec alone (no mesh): JSON data -> wire bytes for every datatype, outputs back."""

from __future__ import annotations

import json
from typing import Any

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from gateway.oip.framing import BinaryReader, split_body
from gateway.oip.tensors import json_data, output_document
from mlbuffet.protocol import tensors
from mlbuffet.protocol.errors import BadRequestError
from mlbuffet.protocol.inference import ObjectOutput, Tensor

FIXED = sorted(tensors.DTYPES)


@st.composite
def arrays(draw: Any) -> Any:
    datatype = draw(st.sampled_from([*FIXED, tensors.BYTES]))
    shape = draw(hnp.array_shapes(min_dims=0, max_dims=3, min_side=0, max_side=4))
    if datatype == tensors.BYTES:
        elements = draw(
            st.lists(st.text(), min_size=int(np.prod(shape)), max_size=int(np.prod(shape)))
        )
        return datatype, np.array(elements, dtype=object).reshape(shape)
    dtype = tensors.DTYPES[datatype]
    finite = hnp.from_dtype(dtype, allow_nan=False, allow_infinity=False)
    return datatype, draw(hnp.arrays(dtype, shape, elements=finite))


@given(arrays(), st.booleans())
def test_json_data_of_every_datatype_is_the_wire_encoding(case: Any, nested: bool) -> None:
    datatype, array = case
    values = array.tolist() if nested and array.ndim else array.reshape(-1).tolist()
    data = json_data(json.loads(json.dumps(values)), datatype, list(array.shape), "input")
    assert data == tensors.encode_array(array)[2]
    tensor = Tensor("y", datatype, array.shape, data)
    document, chunk = output_document(tensor, binary=False)
    assert chunk is None
    back = json.loads(json.dumps(document))["data"]
    assert json_data(back, datatype, list(array.shape), "output") == data
    document, chunk = output_document(tensor, binary=True)
    assert chunk == data
    assert document["parameters"] == {"binary_data_size": len(data)}


@pytest.mark.parametrize(
    ("value", "datatype", "words"),
    [
        ([True], "INT32", "whole numbers"),
        ([1], "FP32", None),
        ([True], "FP32", "numbers"),
        ([65520.0], "FP16", "range"),
        ([2**64], "UINT64", "0..18446744073709551615"),
        ([-1], "UINT8", "0..255"),
        ([None], "FP64", None),  # null is the missing value: NaN
        ([None], "INT32", "whole numbers"),
        ([None], "BOOL", "true or false"),
        (["a"], "BOOL", "true or false"),
        ([b"x".decode()], "BYTES", None),
    ],
)
def test_json_values_are_checked_against_the_datatype(value, datatype, words) -> None:
    if words is None:
        json_data(value, datatype, [1], "input")
        return
    with pytest.raises(BadRequestError, match=words):
        json_data(value, datatype, [1], "input")


def test_data_nested_deeper_than_numpy_allows_is_refused() -> None:
    deep: Any = [1.0]
    for _ in range(70):
        deep = [deep]
    with pytest.raises(BadRequestError, match="nested too deeply"):
        json_data(deep, "FP32", [1], "input")


def test_binary_reader_hands_out_slices_in_order() -> None:
    reader = BinaryReader(memoryview(b"abcdef"))
    assert reader.take(2, "a") == b"ab"
    assert reader.take(0, "b") == b""
    with pytest.raises(BadRequestError, match="runs past the end"):
        reader.take(5, "c")
    assert reader.take(4, "c") == b"cdef"
    reader.check_consumed()


def test_split_body_reads_only_the_header_as_json() -> None:
    framed = split_body(b'{"inputs": []}\xff\x00', "14")
    assert framed.document == {"inputs": []}
    assert bytes(framed.binary) == b"\xff\x00"


def test_an_object_output_is_bytes_of_json_text_per_item() -> None:
    output = ObjectOutput("probabilities", [{0: 0.25, 1: 0.75}, {0: 1.0, 1: 0.0}])
    document, _ = output_document(output, binary=False)
    assert document == {
        "name": "probabilities",
        "datatype": "BYTES",
        "shape": [2],
        "data": ['{"0": 0.25, "1": 0.75}', '{"0": 1.0, "1": 0.0}'],
    }
