"""Property tests (hypothesis): any array round-trips, and any payload is parsed or refused as 400."""

from __future__ import annotations

import msgpack
import numpy as np
import pytest

pytest.importorskip("hypothesis", reason="hypothesis is a test dependency (pip install hypothesis)")

from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from mlbuffet.protocol.errors import BadRequestError
from mlbuffet.protocol.events import ModelEvent
from mlbuffet.protocol.inference import EchoReply, EchoRequest, InferRequest, InferResponse
from mlbuffet.protocol.tensors import DTYPES, decode_array, encode_array
from mlbuffet.protocol.wire import unpack


@settings(database=None, deadline=None)
@given(
    hnp.arrays(
        dtype=st.sampled_from(list(DTYPES.values())),
        shape=hnp.array_shapes(min_dims=0, max_dims=4, min_side=0, max_side=5),
    )
)
def test_any_array_round_trips(array):
    back = decode_array(*encode_array(array))
    assert back.shape == array.shape
    assert back.tobytes() == np.ascontiguousarray(array).tobytes()


@settings(database=None, deadline=None)
@given(st.lists(st.one_of(st.text(), st.binary()), max_size=8))
def test_any_strings_round_trip_as_bytes(values):
    array = np.array([*values, None], dtype=object)[:-1]  # keep a 1-d object array
    back = decode_array(*encode_array(array))
    assert back.tolist() == [v.encode() if isinstance(v, str) else v for v in values]


PARSERS = [
    InferRequest.from_dict,
    InferResponse.from_dict,
    EchoRequest.from_dict,
    EchoReply.from_dict,
    ModelEvent.from_dict,
]


@settings(max_examples=300, database=None, deadline=None)
@given(payload=st.binary(max_size=64), parse=st.sampled_from(PARSERS))
def test_random_bytes_are_parsed_or_refused_as_a_bad_request(payload, parse):
    try:
        unpack(payload, parse)
    except BadRequestError:
        pass


msgpack_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(-(2**63), 2**64 - 1)
    | st.floats()
    | st.text()
    | st.binary(),
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4)
    ),
    max_leaves=12,
)


@settings(max_examples=300, database=None, deadline=None)
@given(
    raw=st.fixed_dictionaries(
        {},
        optional={
            "model": msgpack_values,
            "version": msgpack_values,
            "inputs": st.lists(
                st.fixed_dictionaries(
                    {},
                    optional={
                        "name": msgpack_values,
                        "datatype": msgpack_values,
                        "shape": msgpack_values,
                        "data": msgpack_values,
                    },
                ),
                max_size=2,
            )
            | msgpack_values,
            "outputs": msgpack_values,
            "id": msgpack_values,
            "parameters": msgpack_values,
        },
    )
)
def test_an_inference_request_of_random_fields_is_parsed_or_refused_as_a_bad_request(raw):
    payload = msgpack.packb(raw, use_bin_type=True)
    try:
        request = unpack(payload, InferRequest.from_dict)
    except BadRequestError:
        return
    assert isinstance(request.model, str)
    assert all(isinstance(t.data, bytes | bytearray) for t in request.inputs)
