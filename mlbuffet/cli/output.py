"""How `mlbuffet models`, `predict` and `train` print: tables for people, JSON for scripts,
and an exit status that says what kind of failure it was (docs/cli.md)."""

from __future__ import annotations

import json
import sys
from collections.abc import Sequence
from enum import IntEnum
from typing import Any

from mlbuffet.protocol.errors import MLBuffetError


class Exit(IntEnum):
    OK = 0
    SERVER_ERROR = 1
    """The server failed (a 5xx other than the ones below)."""
    USAGE = 2
    """The command line is wrong: an unknown flag, values that are not JSON, a missing file."""
    NOT_FOUND = 3
    """No such model or version (404)."""
    REFUSED = 4
    """The server refused the request as wrong (400, 409, 413, 415, 422)."""
    UNAVAILABLE = 5
    """Nothing answered: the server or NATS is unreachable, no modelhost serves the model (503),
    or no answer came in time (504)."""
    JOB_FAILED = 6
    """A training job the command waited for ended failed."""
    JOB_CANCELLED = 7
    """A training job the command waited for ended cancelled."""


def exit_for(error: MLBuffetError) -> Exit:
    if error.status == 404:
        return Exit.NOT_FOUND
    if error.status in (503, 504):
        return Exit.UNAVAILABLE
    if 400 <= error.status < 500:
        return Exit.REFUSED
    return Exit.SERVER_ERROR


def fail(error: MLBuffetError, as_json: bool) -> Exit:
    """Report `error` (on stderr, and as JSON on stdout with --json); the exit status for it."""
    print(f"mlbuffet: error {int(error.status)}: {error.message}", file=sys.stderr)
    if as_json:
        emit({"error": {"code": int(error.status), "message": error.message}})
    return exit_for(error)


def emit(document: Any) -> None:
    print(json.dumps(document, ensure_ascii=False))


def table(headers: Sequence[str], rows: Sequence[Sequence[Any]]) -> None:
    """Left-aligned columns, two spaces apart, the last one free to run long."""
    cells = [[str(h) for h in headers], *[["" if c is None else str(c) for c in r] for r in rows]]
    widths = [max(len(row[i]) for row in cells) for i in range(len(headers) - 1)]
    for row in cells:
        padded = [cell.ljust(width) for cell, width in zip(row, widths, strict=False)]
        print("  ".join([*padded, row[-1]]).rstrip())


def compact(value: Any) -> str:
    """One value on one line, as JSON."""
    return json.dumps(value, ensure_ascii=False, separators=(", ", ": "))
