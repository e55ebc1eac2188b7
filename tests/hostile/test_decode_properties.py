"""Every decoder of the protocol, on arbitrary msgpack: a message or an MLBuffetError, nothing else.

Pure functions, no NATS: many examples cheaply. The NATS-level fuzz
(test_nats_fuzz.py) sends the nastiest of these to the running actors.
"""

from __future__ import annotations

from typing import Any

import msgpack
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from mlbuffet.protocol import cluster, events, inference, jobs, wire
from mlbuffet.protocol.errors import MAX_MESSAGE_CHARS, BadRequestError, MLBuffetError
from mlbuffet.protocol.names import parse_node_id, parse_upload_filename
from mlbuffet.protocol.tensors import decode_array

DECODERS = [
    cls.from_dict
    for module in (inference, events, cluster, jobs)
    for _, cls in sorted(vars(module).items())
    if isinstance(cls, type) and cls.__module__ == module.__name__ and hasattr(cls, "TYPE")
]
"""Every message of the wire, found rather than listed: a new one is fuzzed the day it exists."""
FIELDS = [
    "type", "model", "inputs", "outputs", "name", "datatype", "shape", "data", "version", "id",
    "parameters", "node", "role", "at", "interval_s", "models", "counters", "job", "spec",
    "state", "script", "requirements", "timeout_s", "record", "lines", "error", "code", "message",
]  # fmt: skip

scalars = (
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**63), max_value=2**64 - 1)
    | st.floats(allow_nan=True, allow_infinity=True)
    | st.text(max_size=20)
    | st.binary(max_size=20)
)
values = st.recursive(
    scalars,
    lambda inner: (
        st.lists(inner, max_size=4)
        | st.dictionaries(st.sampled_from(FIELDS) | st.text(max_size=5), inner, max_size=6)
    ),
    max_leaves=30,
)


@settings(max_examples=300)
@given(st.dictionaries(st.sampled_from(FIELDS), values, max_size=10))
def test_every_decoder_gives_a_message_or_a_4xx(raw: dict[str, Any]) -> None:
    payload = msgpack.packb(raw, use_bin_type=True)
    for decode in DECODERS:
        try:
            wire.unpack(payload, decode)
        except MLBuffetError as exc:
            assert exc.message
            # An "error" map in a message is the reply convention: any status may come back.
            assert exc.status < 500 or "error" in raw


@settings(max_examples=200)
@given(st.binary(max_size=200))
def test_unpack_map_refuses_garbage_with_a_400(payload: bytes) -> None:
    try:
        wire.unpack_map(payload)
    except MLBuffetError as exc:
        assert exc.status == 400


@settings(max_examples=200)
@given(
    st.sampled_from(["FP32", "INT64", "BYTES", "BOOL", "FP128", ""]),
    st.lists(st.integers(min_value=-(2**64), max_value=2**64), max_size=8),
    st.binary(max_size=64),
)
def test_decode_array_refuses_any_bad_shape_with_a_400(
    datatype: str, shape: list[int], data: bytes
) -> None:
    try:
        decode_array(datatype, shape, data)
    except MLBuffetError as exc:
        assert exc.status == 400


def test_error_messages_are_bounded() -> None:
    error = BadRequestError("x" * 1_000_000)
    assert len(error.message) < MAX_MESSAGE_CHARS + 40
    assert error.message.endswith(f"({1_000_000 - MAX_MESSAGE_CHARS} more characters)")
    assert BadRequestError("short").message == "short"


@pytest.mark.parametrize("raw", ["", "a b", "a.b", "*", ">", "a\x00", "x" * 129, "n\u0430de"])
def test_node_ids_are_subject_tokens(raw: str) -> None:
    with pytest.raises(BadRequestError, match="invalid node id"):
        parse_node_id(raw)


@pytest.mark.parametrize("raw", ["model.onnx", "mod\u00e8le v2.onnx", "x" * 255, "model"])
def test_plain_upload_file_names_are_kept(raw: str) -> None:
    assert parse_upload_filename(raw) == raw


def test_the_decoders_are_found_in_every_protocol_module() -> None:
    modules = {decode.__module__ for decode in DECODERS}
    assert modules == {m.__name__ for m in (inference, events, cluster, jobs)}
    assert inference.InferRequest.from_dict in DECODERS
