"""The msgpack encoding of every message, and of error replies.

Every message is a msgpack map with a versioned `type` field, so the wire can
evolve: a reader accepts a map without `type` as the current version and
refuses a type it does not know. This is the only module that packs or
unpacks msgpack.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any, Protocol, TypeVar

import msgpack

from mlbuffet.protocol.errors import BadRequestError, MLBuffetError, error_for_status


class WireMessage(Protocol):
    """Every message of the mesh: a dataclass that knows its own map."""

    def to_dict(self) -> dict[str, Any]: ...


def pack(message: WireMessage) -> bytes:
    packed: bytes = msgpack.packb(message.to_dict(), use_bin_type=True)
    return packed


def pack_error(error: MLBuffetError) -> bytes:
    """An error reply: `{"error": {"code": <HTTP status>, "message": <text>}}`, plus
    `"kind"` for the errors that have one (`"overloaded"`)."""
    body: dict[str, Any] = {"code": int(error.status), "message": error.message}
    if error.kind is not None:
        body["kind"] = error.kind
    packed: bytes = msgpack.packb({"type": "mlbuffet.error.v1", "error": body}, use_bin_type=True)
    return packed


_ERROR_PREFIX = b"\x82" + msgpack.packb("type") + msgpack.packb("mlbuffet.error.v1")


"""How every error reply from pack_error starts: a reply is told from a result in O(1)."""


def error_status(payload: bytes) -> int | None:
    """The HTTP status of an error reply made by pack_error; None for any other payload."""
    if not payload.startswith(_ERROR_PREFIX):
        return None
    try:
        error = msgpack.unpackb(payload, raw=False).get("error")
        code = error.get("code") if isinstance(error, dict) else None
    except Exception:  # not ours after all: let unpack say what is wrong with it
        return None
    return code if isinstance(code, int) else None


def unpack_map(payload: bytes) -> dict[Any, Any]:
    """Decode a msgpack map, turning every kind of malformed input into a BadRequestError."""
    try:
        raw = msgpack.unpackb(payload, raw=False, strict_map_key=False)
    except Exception as exc:  # msgpack raises several unrelated types for bad input
        raise BadRequestError(f"payload is not valid msgpack ({type(exc).__name__})") from None
    if not isinstance(raw, dict):
        raise BadRequestError("payload must be a msgpack map")
    return raw


def raise_if_error(raw: Mapping[str, Any]) -> None:
    """Raise the MLBuffetError carried by an error reply; do nothing for other maps."""
    error = raw.get("error")
    if isinstance(error, Mapping):
        code = error.get("code")
        message = error.get("message")
        kind = error.get("kind")
        raise error_for_status(
            code if isinstance(code, int) else 500,
            message if isinstance(message, str) else "error without a message",
            kind if isinstance(kind, str) else None,
        )


_M = TypeVar("_M")


def unpack(payload: bytes, parse: Callable[[Mapping[str, Any]], _M]) -> _M:
    """Decode a reply or request with `parse` (a from_dict); error replies are raised."""
    raw = unpack_map(payload)
    raise_if_error(raw)
    return parse(raw)
