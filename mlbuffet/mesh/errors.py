"""NATS failures as MLBuffet errors: the one mapping every caller of NATS goes through.

A REST caller, a `mlbuffet.Client` user and the CLI must see the same status
for the same failure, whichever call met it: no responders is 503, no answer
in time is 504, a lost connection 503, JetStream without a leader 503, a
payload over the server's limit 413. Callers that know what the silence
means (no trainer runs, no modelhost serves the model) pass their own error
for no responders or a timeout; the status stays the table's.
"""

from __future__ import annotations

from http import HTTPStatus

import nats.errors
import nats.js.errors as js_errors
from nats.aio.client import Client

from mlbuffet.protocol.errors import (
    DeadlineExceededError,
    MLBuffetError,
    PayloadTooLargeError,
    ServiceUnavailableError,
)

CONNECTION_ERRORS: tuple[type[Exception], ...] = (
    nats.errors.ConnectionClosedError,
    nats.errors.ConnectionReconnectingError,
    nats.errors.ConnectionDrainingError,
    nats.errors.OutboundBufferLimitError,
    nats.errors.StaleConnectionError,
    nats.errors.NoServersError,
)
"""The connection is gone or going: retrying on a fresh one may work."""

_JETSTREAM_UNAVAILABLE = frozenset(
    {HTTPStatus.SERVICE_UNAVAILABLE, HTTPStatus.INTERNAL_SERVER_ERROR}
)
"""API error codes of a JetStream that cannot answer now: no leader, no quorum, storage busy."""


def lost_connection(who: str) -> ServiceUnavailableError:
    return ServiceUnavailableError(f"{who} has lost its NATS connection; retry")


def from_nats(
    exc: BaseException,
    who: str,
    *,
    no_responders: MLBuffetError | None = None,
    timed_out: MLBuffetError | None = None,
) -> MLBuffetError | None:
    """The MLBuffet error of a NATS failure, or None if `exc` is none (a bug: 500).

    `who` names the caller in the message of a lost connection ("the gateway").
    `no_responders` and `timed_out` replace the generic errors of those cases
    with one that says what did not answer.
    """
    if isinstance(exc, MLBuffetError):
        return exc
    if isinstance(exc, nats.errors.NoRespondersError):
        return no_responders or ServiceUnavailableError(
            "nothing on NATS answers this request (is JetStream enabled on the server?)"
        )
    if isinstance(exc, TimeoutError):  # nats.errors.TimeoutError and asyncio's alike
        return timed_out or DeadlineExceededError("NATS did not answer in time; retry")
    if isinstance(exc, nats.errors.MaxPayloadError):
        return PayloadTooLargeError(f"the message is over the NATS server's size limit ({exc})")
    if isinstance(exc, js_errors.APIError):
        code = getattr(exc, "code", None)  # the KV errors nats-py raises itself have none
        if code == HTTPStatus.REQUEST_TIMEOUT:
            return timed_out or DeadlineExceededError("JetStream did not answer in time; retry")
        if code in _JETSTREAM_UNAVAILABLE or isinstance(exc, js_errors.ServiceUnavailableError):
            why = getattr(exc, "description", None) or "no leader"
            return ServiceUnavailableError(f"JetStream cannot answer now ({why}); retry")
        return None  # a request JetStream refuses (400, 404) is the caller's to handle
    if isinstance(exc, js_errors.NoStreamResponseError):
        return ServiceUnavailableError("JetStream did not store the message; retry")
    if isinstance(exc, CONNECTION_ERRORS):
        return lost_connection(who)
    if isinstance(exc, nats.errors.Error):
        return ServiceUnavailableError(
            f"{who}'s NATS connection failed ({type(exc).__name__}); retry"
        )
    return None


def check_payload(
    nc: Client, payload: bytes, what: str = "the request", advice: str = "send a smaller batch"
) -> None:
    """413 before sending what the server would refuse (and a request would hang on).

    The one size check of every message we send: a request here, a modelhost's
    answer ("the answer", "ask for fewer outputs or a smaller batch").
    """
    if len(payload) > nc.max_payload:
        raise PayloadTooLargeError(
            f"{what} is {len(payload)} bytes encoded, over the NATS limit of "
            f"{nc.max_payload}; {advice}"
        )
