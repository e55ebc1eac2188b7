"""The one mapping of NATS failures: each kind of failure comes back as one status."""

from __future__ import annotations

import nats.errors
import nats.js.errors as js_errors
import pytest

from mlbuffet.mesh.errors import from_nats
from mlbuffet.protocol import errors

NATS_FAILURES = [
    (nats.errors.NoRespondersError(), errors.ServiceUnavailableError, 503),
    (nats.errors.TimeoutError(), errors.DeadlineExceededError, 504),
    (nats.errors.FlushTimeoutError(), errors.DeadlineExceededError, 504),
    (TimeoutError(), errors.DeadlineExceededError, 504),
    (js_errors.FetchTimeoutError(), errors.DeadlineExceededError, 504),
    (nats.errors.MaxPayloadError(), errors.PayloadTooLargeError, 413),
    (nats.errors.ConnectionClosedError(), errors.ServiceUnavailableError, 503),
    (nats.errors.ConnectionReconnectingError(), errors.ServiceUnavailableError, 503),
    (nats.errors.ConnectionDrainingError(), errors.ServiceUnavailableError, 503),
    (nats.errors.StaleConnectionError(), errors.ServiceUnavailableError, 503),
    (nats.errors.UnexpectedEOF(), errors.ServiceUnavailableError, 503),
    (nats.errors.OutboundBufferLimitError(), errors.ServiceUnavailableError, 503),
    (nats.errors.NoServersError(), errors.ServiceUnavailableError, 503),
    (nats.errors.ProtocolError(), errors.ServiceUnavailableError, 503),
    (
        js_errors.ServiceUnavailableError(
            code=503, description="JetStream system temporarily unavailable", err_code=10008
        ),
        errors.ServiceUnavailableError,
        503,
    ),
    (
        js_errors.APIError(code=503, description="no suitable peers"),
        errors.ServiceUnavailableError,
        503,
    ),
    (
        js_errors.ServerError(code=500, description="stream store failed"),
        errors.ServiceUnavailableError,
        503,
    ),
    (
        js_errors.APIError(code=408, description="request timeout"),
        errors.DeadlineExceededError,
        504,
    ),
    (js_errors.NoStreamResponseError(), errors.ServiceUnavailableError, 503),
]


@pytest.mark.parametrize(
    ("failure", "error_class", "status"),
    NATS_FAILURES,
    ids=[f"{type(f).__module__.split('.')[-1]}.{type(f).__name__}" for f, _, _ in NATS_FAILURES],
)
def test_each_nats_failure_maps_to_one_error_and_status(failure, error_class, status):
    error = from_nats(failure, "the gateway")
    assert type(error) is error_class
    assert error.status == status
    assert error.message


def test_a_lost_connection_names_who_lost_it():
    error = from_nats(nats.errors.ConnectionClosedError(), "the gateway")
    assert error is not None
    assert error.message == "the gateway has lost its NATS connection; retry"


def test_the_callers_own_errors_say_what_did_not_answer():
    silent = errors.ModelNotReadyError("no modelhost serves 'iris' right now")
    late = errors.DeadlineExceededError("no trainer answered within 10 s")
    assert from_nats(nats.errors.NoRespondersError(), "x", no_responders=silent) is silent
    assert from_nats(nats.errors.TimeoutError(), "x", timed_out=late) is late
    assert from_nats(js_errors.APIError(code=408), "x", timed_out=late) is late
    # The override is for its own case only.
    lost = from_nats(nats.errors.ConnectionClosedError(), "x", no_responders=silent, timed_out=late)
    assert type(lost) is errors.ServiceUnavailableError


def test_an_mlbuffet_error_passes_through_unchanged():
    error = errors.ModelNotFoundError("model 'x' not found")
    assert from_nats(error, "the client") is error


@pytest.mark.parametrize(
    "failure",
    [
        ValueError("a bug"),
        KeyError("a bug"),
        js_errors.BadRequestError(code=400, description="invalid stream config"),
        js_errors.KeyNotFoundError(),
        js_errors.KeyWrongLastSequenceError(description="wrong last sequence: 3"),
        js_errors.NotFoundError(code=404),
    ],
    ids=["bug", "key", "js-bad-request", "js-key-not-found", "js-wrong-last-sequence", "js-404"],
)
def test_what_is_no_nats_failure_is_not_mapped(failure):
    """A bug stays a bug (500, logged), and a refusal the caller handles stays the caller's."""
    assert from_nats(failure, "the gateway") is None
