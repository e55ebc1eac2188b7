"""How `mlbuffet models`, `predict` and `train` print: tables for people, JSON for scripts,
and an exit status that says what kind of failure it was (docs/cli.md)."""

from __future__ import annotations

import json
import os
import shutil
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


def terminal_width() -> int | None:
    """Columns of the terminal stdout shows in; None when it goes to a pipe or a file (and
    COLUMNS is unset): scripts and grep get whole lines, as from `ps`."""
    if "COLUMNS" not in os.environ and not sys.stdout.isatty():
        return None
    return shutil.get_terminal_size().columns


def table(headers: Sequence[str], rows: Sequence[Sequence[Any]], fit_to: int | None = None) -> None:
    """Left-aligned columns, two spaces apart, the last one free to run long; with `fit_to`, a
    line longer than that many characters is cut with … (a wrapped line breaks the columns)."""
    cells = [[str(h) for h in headers], *[["" if c is None else str(c) for c in r] for r in rows]]
    widths = [max(len(row[i]) for row in cells) for i in range(len(headers) - 1)]
    for row in cells:
        padded = [cell.ljust(width) for cell, width in zip(row, widths, strict=False)]
        line = "  ".join([*padded, row[-1]]).rstrip()
        if fit_to is not None and len(line) > fit_to:
            line = line[: max(fit_to - 1, 0)] + "…"
        print(line)


def compact(value: Any) -> str:
    """One value on one line, as JSON."""
    return json.dumps(value, ensure_ascii=False, separators=(", ", ": "))
