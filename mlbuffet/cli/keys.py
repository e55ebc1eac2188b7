"""`mlbuffet keys`: make a new API key, or hash one you have, for the gateway's key file."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from mlbuffet.apikeys import GRANTABLE, ApiKey, ApiKeyError, hash_key, new_key, parse_scopes

SCOPE_HELP = ", ".join(s.value for s in GRANTABLE)


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="mlbuffet keys",
        description="API keys of the REST gateway (docs/security.md). The key is printed once "
        "and never stored: only the line with its SHA-256 goes into the key file.",
    )
    commands = parser.add_subparsers(dest="command", required=True)
    new = commands.add_parser("new", help="generate a key; print it and the key-file line")
    new.add_argument("--name", required=True, help="who or what uses the key (a word)")
    new.add_argument("--scopes", required=True, help=f"comma separated: {SCOPE_HELP}")
    line = commands.add_parser("line", help="the key-file line of an existing key read from stdin")
    line.add_argument("--name", required=True)
    line.add_argument("--scopes", required=True, help=f"comma separated: {SCOPE_HELP}")
    return parser.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    try:
        scopes = parse_scopes(args.scopes)
        if args.command == "new":
            key = new_key()
        else:
            key = sys.stdin.readline().strip()
            if not key:
                raise ApiKeyError("give the key on standard input")
        entry = ApiKey(args.name, scopes, hash_key(key))
        entry = ApiKey.from_line(entry.line())  # the name is checked as the gateway will
    except ApiKeyError as exc:
        print(f"mlbuffet keys: {exc}", file=sys.stderr)
        return 2
    if args.command == "new":
        print(f"key:  {key}")
        print("      (give it to the client as 'Authorization: Bearer <key>'; it is not stored)")
        print(f"line: {entry.line()}")
    else:
        print(entry.line())
    return 0


if __name__ == "__main__":
    sys.exit(main())
