"""The error types of MLBuffet: one class per HTTP status, shared by every role.

An actor raises one of these; it travels over NATS as
`{"error": {"code": <status>, "message": <text>}}` and the gateway answers
with that same status. Anything that is not an MLBuffetError is a bug: it is
logged where it happened and reported as InternalError, never as `repr(exc)`.
"""

from __future__ import annotations

from http import HTTPStatus

MAX_MESSAGE_CHARS = 2000
"""Longest error message kept: messages quote the caller's input (a name, a shape), and
hostile input must not turn an error reply into megabytes (or past NATS's payload limit)."""


def _bounded(message: str) -> str:
    if len(message) <= MAX_MESSAGE_CHARS:
        return message
    cut = len(message) - MAX_MESSAGE_CHARS
    return f"{message[:MAX_MESSAGE_CHARS]}... ({cut} more characters)"


class MLBuffetError(Exception):
    """Root of every error a user can see; `status` is the HTTP status it maps to."""

    status: int = HTTPStatus.INTERNAL_SERVER_ERROR
    """Set by each subclass; an error rebuilt from a status with no class of its own keeps it."""
    kind: str | None = None
    """Sent beside the status for the few subclasses a caller must tell apart from their
    status's class (OverloadedError from another 503), so they survive the wire."""

    def __init__(self, message: str) -> None:
        message = _bounded(message)
        super().__init__(message)
        self.message = message

    @property
    def reason(self) -> str:
        """The HTTP reason phrase of `status`, e.g. "Not Found"."""
        try:
            return HTTPStatus(self.status).phrase
        except ValueError:
            return "Client Error" if self.status < 500 else "Server Error"


class BadRequestError(MLBuffetError):
    """The request cannot be parsed: bad JSON, bad msgpack, an invalid name."""

    status = HTTPStatus.BAD_REQUEST


class UnauthorizedError(MLBuffetError):
    """No API key, or one the gateway does not know."""

    status = HTTPStatus.UNAUTHORIZED


class ForbiddenError(MLBuffetError):
    """A valid API key without the scope the route needs."""

    status = HTTPStatus.FORBIDDEN


class ModelNotFoundError(MLBuffetError):
    """No such model, or no such version of it."""

    status = HTTPStatus.NOT_FOUND


class ConflictError(MLBuffetError):
    """A concurrent change won; the request may be retried."""

    status = HTTPStatus.CONFLICT


class PayloadTooLargeError(MLBuffetError):
    status = HTTPStatus.REQUEST_ENTITY_TOO_LARGE


class UnsupportedMediaTypeError(MLBuffetError):
    status = HTTPStatus.UNSUPPORTED_MEDIA_TYPE


class UnprocessableError(MLBuffetError):
    """Well-formed, but it does not fit: wrong input shape or type, a file that is not a model."""

    status = HTTPStatus.UNPROCESSABLE_ENTITY


class TooManyRequestsError(MLBuffetError):
    status = HTTPStatus.TOO_MANY_REQUESTS


class InternalError(MLBuffetError):
    status = HTTPStatus.INTERNAL_SERVER_ERROR


class ServiceUnavailableError(MLBuffetError):
    """Nobody can take the work now: no modelhost serves the model, or all are busy."""

    status = HTTPStatus.SERVICE_UNAVAILABLE


class ModelNotReadyError(ServiceUnavailableError):
    """The model exists but no modelhost has it loaded yet."""


class OverloadedError(ServiceUnavailableError):
    """No room for more work now (a modelhost's queue, a gateway's limit): retry shortly."""

    kind = "overloaded"


class ModelTooLargeError(MLBuffetError):
    """The model takes more memory than a modelhost's budget: no host can hold it.

    507 Insufficient Storage: the server cannot hold what the request needs, and
    asking again will not help until a bigger host joins (or the model shrinks).
    Not a 503, which callers and hedging retry.
    """

    status = HTTPStatus.INSUFFICIENT_STORAGE


class DeadlineExceededError(MLBuffetError):
    """No answer before the request's deadline."""

    status = HTTPStatus.GATEWAY_TIMEOUT


_BY_STATUS: dict[int, type[MLBuffetError]] = {
    cls.status: cls
    for cls in (
        BadRequestError,
        UnauthorizedError,
        ForbiddenError,
        ModelNotFoundError,
        ConflictError,
        PayloadTooLargeError,
        UnsupportedMediaTypeError,
        UnprocessableError,
        TooManyRequestsError,
        InternalError,
        ServiceUnavailableError,
        ModelTooLargeError,
        DeadlineExceededError,
    )
}


_BY_KIND: dict[str, type[MLBuffetError]] = {
    cls.kind: cls for cls in (OverloadedError,) if cls.kind is not None
}


def error_for_status(status: int, message: str, kind: str | None = None) -> MLBuffetError:
    """Rebuild the error an actor reported from its status and message.

    A 4xx or 5xx status with no class of its own (405, 408, 502, ...) comes back
    as a BadRequestError or InternalError that still carries that status, so
    the gateway answers with the code the actor chose. Anything else (a 2xx,
    a code that is no HTTP error) is an InternalError. A known `kind` of that
    same status picks its subclass (OverloadedError); an unknown one is ignored.
    """
    by_kind = _BY_KIND.get(kind) if kind is not None else None
    if by_kind is not None and by_kind.status == status:
        return by_kind(message)
    cls = _BY_STATUS.get(status)
    if cls is not None:
        return cls(message)
    if 400 <= status < 500:
        error: MLBuffetError = BadRequestError(message)
    elif 500 <= status < 600:
        error = InternalError(message)
    else:
        return InternalError(message)
    error.status = status
    return error
