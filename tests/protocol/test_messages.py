"""Messages through pack/unpack, and every way a payload can be wrong."""

from __future__ import annotations

import msgpack
import pytest

from mlbuffet.protocol.errors import BadRequestError
from mlbuffet.protocol.events import ModelEvent
from mlbuffet.protocol.inference import (
    EchoReply,
    EchoRequest,
    InferRequest,
    InferResponse,
    ObjectOutput,
    Tensor,
)
from mlbuffet.protocol.placement import PlaceReply
from mlbuffet.protocol.wire import pack, unpack, unpack_map

TENSOR = Tensor("x", "FP32", (1, 2), b"\x00\x00\x80?\x00\x00\x00@")

MESSAGES = [
    InferRequest(model="iris", inputs=(TENSOR,)),
    InferRequest(
        model="iris",
        inputs=(TENSOR, Tensor("names", "BYTES", (1,), b"\x02\x00\x00\x00hi")),
        version=3,
        outputs=("label",),
        id="req-1",
        parameters={"threshold": 0.5, "tags": ["a", "b"]},
    ),
    InferRequest(model="empty", inputs=()),
    InferResponse(model="iris", version=2, node="modelhost-a", outputs=(TENSOR,)),
    InferResponse(
        model="iris",
        version=1,
        node="modelhost-b",
        outputs=(
            Tensor("label", "INT64", (1,), b"\x01" + b"\x00" * 7),
            ObjectOutput("probability", [{0: 0.1, 1: 0.8, 2: 0.1}, {"cat": 1.0}]),
        ),
        id="r",
    ),
    EchoRequest(data="hello"),
    EchoRequest(data={"nested": [1, 2.5, None, b"raw"]}),
    EchoReply(data=7, node="modelhost-c"),
    PlaceReply(model="iris", version=2, node="modelhost-d", loaded=True),
    ModelEvent(ModelEvent.UPLOADED, "iris", 4, "gateway-x", 1700000000.25),
    ModelEvent(ModelEvent.UNLOADED, "iris", None, "modelhost-y", 1700000000.0),
    ModelEvent(ModelEvent.EVICTED, "iris", 1, "modelhost-y", 1700000000.0, reason="lru"),
]


@pytest.mark.parametrize("message", MESSAGES, ids=lambda m: type(m).__name__)
def test_every_message_round_trips_through_pack_and_unpack(message):
    assert unpack(pack(message), type(message).from_dict) == message


@pytest.mark.parametrize("message", MESSAGES, ids=lambda m: type(m).__name__)
def test_every_message_carries_its_versioned_type(message):
    assert unpack_map(pack(message))["type"] == type(message).TYPE


def test_a_map_without_a_type_is_read_as_the_current_version():
    raw = InferRequest(model="iris", inputs=(TENSOR,)).to_dict()
    del raw["type"]
    assert InferRequest.from_dict(raw).inputs == (TENSOR,)


@pytest.mark.parametrize(
    ("parse", "message"),
    [
        (InferRequest.from_dict, EchoRequest(data=1)),
        (InferResponse.from_dict, MESSAGES[0]),
        (EchoRequest.from_dict, MESSAGES[0]),
        (EchoReply.from_dict, EchoRequest(data=1)),
        (ModelEvent.from_dict, EchoReply(data=1, node="n")),
    ],
    ids=lambda p: getattr(p, "__qualname__", ""),
)
def test_a_message_of_another_type_is_a_bad_request(parse, message):
    with pytest.raises(BadRequestError, match="is not"):
        unpack(pack(message), parse)


def test_a_newer_version_of_a_message_is_a_bad_request():
    raw = InferRequest(model="iris", inputs=(TENSOR,)).to_dict()
    raw["type"] = "mlbuffet.infer_request.v2"
    with pytest.raises(BadRequestError, match="v2"):
        InferRequest.from_dict(raw)


def request_with(**changes: object) -> bytes:
    raw = InferRequest(model="iris", inputs=(TENSOR,)).to_dict()
    raw.update(changes)
    return msgpack.packb(raw, use_bin_type=True)


def tensor_with(**changes: object) -> bytes:
    tensor = {**TENSOR.to_dict(), **changes}
    return request_with(inputs=[tensor])


@pytest.mark.parametrize(
    "payload",
    [
        request_with(model=5),
        request_with(model=None),
        request_with(inputs={"x": 1}),
        request_with(inputs=["not a tensor"]),
        request_with(inputs=None),
        request_with(version="3"),
        request_with(version=True),
        request_with(version=2.0),
        request_with(outputs="label"),
        request_with(outputs=["label", 3]),
        request_with(id=12),
        request_with(parameters=[1, 2]),
        tensor_with(name=None),
        tensor_with(datatype=32),
        tensor_with(shape="1,2"),
        tensor_with(shape=[1, "2"]),
        tensor_with(shape=[1, True]),
        tensor_with(shape=[1.0, 2.0]),
        tensor_with(data="text, not bin"),
        tensor_with(data=[0, 0, 128, 63]),
        msgpack.packb({"type": InferRequest.TYPE, "model": "iris"}),
    ],
    ids=lambda p: repr(msgpack.unpackb(p, strict_map_key=False))[:60],
)
def test_a_field_of_the_wrong_type_is_a_bad_request(payload):
    with pytest.raises(BadRequestError):
        unpack(payload, InferRequest.from_dict)


@pytest.mark.parametrize(
    "payload",
    [
        b"",
        b"\xc1",  # never used in msgpack
        b"\x93\x01\x02\x03",  # an array, not a map
        b"\xa5hello",  # a string
        b"\xdf\xff\xff\xff\xff",  # a map that says it has 4 billion entries
        b"\xdd\xff\xff\xff\xff",  # an array that says the same
        msgpack.packb({"type": InferRequest.TYPE}) + b"trailing",
        msgpack.packb({(1, 2): "an array as a key"}),
    ],
    ids=repr,
)
def test_payloads_that_are_not_a_msgpack_map_are_a_bad_request(payload):
    with pytest.raises(BadRequestError):
        unpack(payload, InferRequest.from_dict)


@pytest.mark.parametrize("message", MESSAGES, ids=lambda m: type(m).__name__)
def test_every_truncation_of_a_message_is_a_bad_request(message):
    payload = pack(message)
    for cut in range(len(payload)):
        with pytest.raises(BadRequestError):
            unpack(payload[:cut], type(message).from_dict)


def test_maps_with_integer_keys_survive_as_integers():
    response = MESSAGES[4]
    back = unpack(pack(response), InferResponse.from_dict)
    assert back.outputs[1].value[0] == {0: 0.1, 1: 0.8, 2: 0.1}
