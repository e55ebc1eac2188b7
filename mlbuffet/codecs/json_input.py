"""JSON that users send (request bodies, the /v2 inference header, the CLI's --values): RFC 8259 only.

Every such document goes through `read_json`, one parser for all, so the gateway
and the CLI refuse the same things with the same words. orjson is both the
fast parser and a strict one: it refuses what JSON does not allow instead of
guessing what was meant. So:

- `NaN`, `Infinity` and `-Infinity` (which Python's json.dumps writes) are refused;
  a missing value is spelled `null`, which the value codecs turn into NaN for
  floating-point inputs (docs/rest-api.md, "Missing values: null and NaN");
- a number beyond the 64-bit float range (`1e400`, a 400-digit integer) is refused,
  never read as an infinity; an integer beyond 64 bits but within that range
  becomes the nearest float, which only floating-point inputs accept;
- invalid UTF-8, lone surrogates, a byte order mark, trailing content and
  nesting deeper than 1024 levels are refused.

Every refusal is a BadRequestError (400) that says what is wrong and where.
"""

from __future__ import annotations

from typing import Any

import orjson

from mlbuffet.protocol.errors import BadRequestError

MAX_DEPTH = 1024
"""orjson's own limit on nested arrays and objects (not configurable)."""

_NOT_NUMBERS = ("NaN", "Infinity", "-Infinity")
_TOO_LARGE = "number is infinity when parsed as double"
_TOO_DEEP = "depth limit exceeded"


def read_json(raw: bytes | bytearray | memoryview | str, what: str) -> Any:
    """The JSON document in `raw`; BadRequestError naming `what` if it is not strict JSON."""
    try:
        return orjson.loads(raw)
    except orjson.JSONDecodeError as exc:
        raise BadRequestError(
            f"{what} is not valid JSON: {_reason(exc, raw)} (line {exc.lineno}, column {exc.colno})"
        ) from None


def _reason(exc: orjson.JSONDecodeError, raw: bytes | bytearray | memoryview | str) -> str:
    """orjson's reason, in words a user can act on for the refusals they will not expect."""
    if exc.msg == _TOO_LARGE:
        return "a number is beyond the range of a 64-bit float (about 1.8e308)"
    if exc.msg == _TOO_DEEP:
        return f"arrays and objects are nested more than {MAX_DEPTH} deep"
    text = raw if isinstance(raw, str) else bytes(raw).decode("utf-8", errors="replace")
    # orjson's position counts characters; a sign is reported one character early.
    at = text[max(exc.pos - 1, 0) : exc.pos + len("Infinity")]
    if any(word in at for word in _NOT_NUMBERS):
        return "NaN and Infinity are not JSON numbers; send null for a missing value"
    return str(exc.msg)
