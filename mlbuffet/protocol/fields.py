"""Reading the fields of a decoded message: each helper raises a BadRequestError that names
the message and the field, so a malformed message is a 400 that says what is wrong."""

from __future__ import annotations

import math
from collections.abc import Mapping
from enum import Enum
from typing import Any, TypeVar

from mlbuffet.protocol.errors import BadRequestError

_T = TypeVar("_T")
_E = TypeVar("_E", bound=Enum)


def required_field(
    raw: Mapping[str, Any], name: str, kind: type[_T] | tuple[type, ...], what: str
) -> Any:
    try:
        value = raw[name]
    except KeyError:
        raise BadRequestError(f"{what} has no {name!r} field") from None
    if not isinstance(value, kind) or (isinstance(value, bool) and kind is not bool):
        raise BadRequestError(f"{what}: field {name!r} has the wrong type")
    return value


def optional_field(
    raw: Mapping[str, Any], name: str, kind: type[_T] | tuple[type, ...], what: str
) -> Any:
    if raw.get(name) is None:
        return None
    return required_field(raw, name, kind, what)


def finite_field(raw: Mapping[str, Any], name: str, what: str) -> float:
    """A number that is not NaN or infinite: times and intervals are compared and subtracted."""
    value = float(required_field(raw, name, (int, float), what))
    if not math.isfinite(value):
        raise BadRequestError(f"{what}: field {name!r} must be a finite number")
    return value


def check_type(raw: Mapping[str, Any], expected: str) -> None:
    found = raw.get("type", expected)
    if found != expected:
        raise BadRequestError(f"message type {found!r} is not {expected!r}")


def string_list(raw: Mapping[str, Any], name: str, what: str) -> tuple[str, ...]:
    values = required_field(raw, name, list, what)
    if not all(isinstance(v, str) for v in values):
        raise BadRequestError(f"{what}: {name!r} must be a list of strings")
    return tuple(values)


def optional_number(raw: Mapping[str, Any], name: str, what: str) -> float | None:
    value = optional_field(raw, name, (int, float), what)
    return None if value is None else float(value)


def enum_field(raw: Mapping[str, Any], name: str, kind: type[_E], what: str, called: str) -> _E:
    """A string field that must be one of `kind`'s values; `called` names one ("job state")."""
    value = required_field(raw, name, str, what)
    try:
        return kind(value)
    except ValueError:
        raise BadRequestError(f"unknown {called} {value!r} in a {what}") from None
