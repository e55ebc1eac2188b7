"""The tensor codec: numpy arrays to wire tensors and back, and what it refuses."""

from __future__ import annotations

import struct
import tracemalloc

import numpy as np
import pytest

from mlbuffet.protocol.errors import BadRequestError, UnprocessableError
from mlbuffet.protocol.tensors import (
    BYTES,
    DTYPES,
    decode_array,
    encode_array,
    encode_bytes_elements,
)


def sample(datatype: str, shape: tuple[int, ...]) -> np.ndarray:
    """An array of `shape` that uses the extremes of `datatype`, not only small values."""
    dtype = DTYPES[datatype]
    count = int(np.prod(shape))
    if dtype.kind == "b":
        values = np.arange(count) % 3 == 0
    elif dtype.kind == "f":
        info = np.finfo(dtype)
        pool = np.array([0.0, -0.0, 1.5, -2.25, info.max, info.min, info.tiny, np.inf, -np.inf])
        values = pool[np.arange(count) % len(pool)]
    else:
        info = np.iinfo(dtype)
        pool = np.array([0, 1, info.max, info.min, info.max // 3], dtype=dtype)
        values = pool[np.arange(count) % len(pool)]
    return np.asarray(values, dtype=dtype).reshape(shape)


@pytest.mark.parametrize("datatype", list(DTYPES))
@pytest.mark.parametrize("shape", [(), (1,), (2, 3), (2, 1, 4), (0,), (3, 0, 2)])
def test_every_fixed_size_datatype_round_trips(datatype, shape):
    array = sample(datatype, shape)
    wire_type, wire_shape, data = encode_array(array)
    assert wire_type == datatype
    assert wire_shape == list(shape)
    assert len(data) == array.size * DTYPES[datatype].itemsize
    back = decode_array(wire_type, wire_shape, data)
    assert back.dtype == DTYPES[datatype]
    assert back.shape == shape
    np.testing.assert_array_equal(back, array)


def test_nan_survives_the_round_trip_bit_for_bit():
    array = np.array([np.nan, -np.nan], dtype=np.float32)
    back = decode_array(*encode_array(array))
    assert back.tobytes() == array.tobytes()


@pytest.mark.parametrize(
    "values",
    [
        ["iris", "", "Ελληνικά", "日本語", "emoji 🐍", "a\x00b"],
        [b"\xff\xfe raw bytes", b"", b"plain"],
        [""],
    ],
)
def test_bytes_tensors_round_trip_non_ascii_and_empty_strings(values):
    array = np.array(values, dtype=object)
    datatype, shape, data = encode_array(array)
    assert datatype == BYTES
    back = decode_array(datatype, shape, data)
    expected = [v.encode() if isinstance(v, str) else v for v in values]
    assert back.tolist() == expected


def test_bytes_layout_is_a_little_endian_length_before_each_element():
    _, _, data = encode_array(np.array(["ab", "", "é"], dtype=object))
    assert data == b"\x02\x00\x00\x00ab" + b"\x00\x00\x00\x00" + b"\x02\x00\x00\x00\xc3\xa9"


@pytest.mark.parametrize("shape", [(0,), (2, 0), (0, 3, 5)])
def test_zero_size_bytes_tensors_round_trip(shape):
    array = np.empty(shape, dtype=object)
    datatype, wire_shape, data = encode_array(array)
    assert data == b""
    assert decode_array(datatype, wire_shape, data).shape == shape


def test_numpy_string_arrays_travel_as_bytes_in_c_order():
    array = np.array([["a", "b"], ["c", "d"]]).T  # a Fortran-ordered view
    datatype, shape, data = encode_array(array)
    assert datatype == BYTES
    assert decode_array(datatype, shape, data).tolist() == [[b"a", b"c"], [b"b", b"d"]]


def test_big_endian_and_strided_arrays_are_sent_as_little_endian_c_order():
    array = np.arange(6, dtype=">i4").reshape(2, 3).T
    datatype, shape, data = encode_array(array)
    assert (datatype, shape) == ("INT32", [3, 2])
    assert data == np.ascontiguousarray(array, dtype="<i4").tobytes()


def test_decoding_shares_the_received_bytes_instead_of_copying():
    data = np.arange(4, dtype="<f4").tobytes()
    array = decode_array("FP32", [4], data)
    assert not array.flags.writeable
    assert np.shares_memory(array, np.frombuffer(data, dtype="<f4"))


# -- what the codec refuses -----------------------------------------------------


@pytest.mark.parametrize("datatype", list(DTYPES))
def test_data_of_the_wrong_length_is_a_bad_request(datatype):
    size = DTYPES[datatype].itemsize
    for data in (b"", b"\x00" * (6 * size - 1), b"\x00" * (6 * size + size)):
        with pytest.raises(BadRequestError, match="needs"):
            decode_array(datatype, [2, 3], data)


@pytest.mark.parametrize("shape", [[-1, 4], [2, -3], [1.5], ["2"], [True], [None], [[2]]], ids=repr)
def test_a_shape_that_is_not_non_negative_integers_is_a_bad_request(shape):
    with pytest.raises(BadRequestError, match="invalid shape"):
        decode_array("FP32", shape, b"\x00" * 32)


def test_more_dimensions_than_numpy_can_hold_is_a_bad_request():
    with pytest.raises(BadRequestError, match="invalid shape"):
        decode_array("FP32", [1] * 65, b"\x00" * 4)


@pytest.mark.parametrize("datatype", ["FP32", BYTES])
def test_an_empty_tensor_with_an_enormous_dimension_is_a_bad_request(datatype):
    with pytest.raises(BadRequestError, match="invalid shape"):
        decode_array(datatype, [0, 2**63], b"")


@pytest.mark.parametrize(
    ("datatype", "shape"),
    [
        ("FP32", [2**31, 2**31]),
        ("FP64", [10**12]),
        ("UINT8", [2**62]),
        (BYTES, [10**12]),
        (BYTES, [2**20, 2**20]),
    ],
)
def test_a_huge_declared_shape_with_tiny_data_is_refused_without_allocating(datatype, shape):
    tracemalloc.start()
    try:
        with pytest.raises(BadRequestError):
            decode_array(datatype, shape, b"\x01\x00\x00\x00x" * 4)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak < 1 << 20, f"refusing the tensor allocated {peak} bytes"


def test_bytes_data_cut_anywhere_is_a_bad_request():
    _, shape, data = encode_array(np.array(["first", "", "third"], dtype=object))
    for cut in range(len(data)):
        with pytest.raises(BadRequestError, match="BYTES"):
            decode_array(BYTES, shape, data[:cut])


def test_bytes_data_with_bytes_left_over_is_a_bad_request():
    _, shape, data = encode_array(np.array(["a", "b"], dtype=object))
    with pytest.raises(BadRequestError, match="after 2 elements"):
        decode_array(BYTES, shape, data + b"\x00")


def test_a_bytes_element_longer_than_the_data_is_a_bad_request():
    data = struct.pack("<I", 2**32 - 1) + b"short"
    with pytest.raises(BadRequestError, match="past the end"):
        decode_array(BYTES, [1], data)


@pytest.mark.parametrize("datatype", ["FP8", "fp32", "OBJECT", "", "STRING"])
def test_an_unknown_datatype_is_a_bad_request(datatype):
    with pytest.raises(BadRequestError, match="unknown datatype"):
        decode_array(datatype, [1], b"\x00" * 4)


@pytest.mark.parametrize("dtype", [np.complex64, "datetime64[s]", "V4"])
def test_arrays_with_no_wire_datatype_cannot_be_encoded(dtype):
    with pytest.raises(UnprocessableError, match="no wire datatype"):
        encode_array(np.zeros(2, dtype=dtype))


@pytest.mark.parametrize("element", [5, 2.5, None, ["a"]], ids=repr)
def test_a_bytes_element_that_is_neither_text_nor_bytes_is_refused(element):
    with pytest.raises(UnprocessableError, match="must be str or bytes"):
        encode_bytes_elements(["fine", element])
