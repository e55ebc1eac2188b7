"""Error replies: every status an actor can send comes back as the right error class."""

from __future__ import annotations

import msgpack
import pytest

from mlbuffet.protocol.errors import (
    BadRequestError,
    ConflictError,
    DeadlineExceededError,
    InternalError,
    MLBuffetError,
    ModelNotFoundError,
    ModelNotReadyError,
    ModelTooLargeError,
    OverloadedError,
    PayloadTooLargeError,
    ServiceUnavailableError,
    TooManyRequestsError,
    UnprocessableError,
    UnsupportedMediaTypeError,
    error_for_status,
)
from mlbuffet.protocol.inference import InferResponse
from mlbuffet.protocol.wire import pack_error, unpack, unpack_map

ERRORS = [
    (BadRequestError, 400, "Bad Request"),
    (ModelNotFoundError, 404, "Not Found"),
    (ConflictError, 409, "Conflict"),
    (PayloadTooLargeError, 413, "Request Entity Too Large"),
    (UnsupportedMediaTypeError, 415, "Unsupported Media Type"),
    (UnprocessableError, 422, "Unprocessable Entity"),
    (TooManyRequestsError, 429, "Too Many Requests"),
    (InternalError, 500, "Internal Server Error"),
    (ServiceUnavailableError, 503, "Service Unavailable"),
    (ModelTooLargeError, 507, "Insufficient Storage"),
    (DeadlineExceededError, 504, "Gateway Timeout"),
]


@pytest.mark.parametrize(("cls", "status", "reason"), ERRORS, ids=lambda v: str(v))
def test_an_error_reply_is_raised_as_the_class_of_its_status(cls, status, reason):
    payload = pack_error(cls("what went wrong"))
    assert unpack_map(payload)["error"] == {"code": status, "message": "what went wrong"}
    with pytest.raises(cls) as raised:
        unpack(payload, InferResponse.from_dict)
    assert type(raised.value) is cls
    assert raised.value.status == status
    assert raised.value.reason == reason
    assert raised.value.message == "what went wrong"


@pytest.mark.parametrize("cls", [ModelNotReadyError, OverloadedError])
def test_kinds_of_unavailability_travel_as_503(cls):
    with pytest.raises(ServiceUnavailableError) as raised:
        unpack(pack_error(cls("busy")), InferResponse.from_dict)
    assert raised.value.status == 503


@pytest.mark.parametrize(
    ("status", "cls"),
    [(405, BadRequestError), (408, BadRequestError), (418, BadRequestError), (502, InternalError)],
)
def test_a_status_without_a_class_of_its_own_keeps_its_code(status, cls):
    error = error_for_status(status, "nope")
    assert isinstance(error, cls)
    assert error.status == status
    assert unpack_map(pack_error(error))["error"]["code"] == status
    assert error.reason


@pytest.mark.parametrize("status", [0, 200, 302, 600, -1])
def test_a_code_that_is_no_http_error_is_an_internal_error(status):
    error = error_for_status(status, "odd")
    assert type(error) is InternalError
    assert error.status == 500


@pytest.mark.parametrize(
    "error",
    [
        {"code": "404", "message": "x"},
        {"message": "no code"},
        {"code": 404},
        {"code": 404, "message": 5},
    ],
    ids=repr,
)
def test_a_malformed_error_reply_still_raises_an_mlbuffet_error(error):
    payload = msgpack.packb({"error": error})
    with pytest.raises(MLBuffetError):
        unpack(payload, InferResponse.from_dict)


def test_every_error_class_is_an_mlbuffet_error_with_an_http_error_status():
    for cls, status, _ in ERRORS:
        assert issubclass(cls, MLBuffetError)
        assert 400 <= status < 600


def test_an_overloaded_host_is_raised_as_overloaded_not_just_503():
    payload = pack_error(OverloadedError("busy"))
    assert unpack_map(payload)["error"] == {"code": 503, "message": "busy", "kind": "overloaded"}
    with pytest.raises(OverloadedError) as raised:
        unpack(payload, InferResponse.from_dict)
    assert raised.value.status == 503 and raised.value.message == "busy"


@pytest.mark.parametrize(
    ("code", "kind"), [(503, "no-such-kind"), (500, "overloaded"), (503, 7)], ids=repr
)
def test_an_unknown_kind_or_one_of_another_status_is_ignored(code, kind):
    payload = msgpack.packb({"error": {"code": code, "message": "x", "kind": kind}})
    with pytest.raises(MLBuffetError) as raised:
        unpack(payload, InferResponse.from_dict)
    assert type(raised.value) is error_for_status(code, "x").__class__
    assert raised.value.status == code
