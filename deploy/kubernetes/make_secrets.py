#!/usr/bin/env python3
"""Write the secrets of deploy/kubernetes: NATS passwords and the gateway's first API key.

    python3 deploy/kubernetes/make_secrets.py [--key-name ops] [--scopes read,predict,write,admin]

Writes base/secrets/nats.env (one password per NATS user, as `python -m mlbuffet.natsd.users`'s
auth.conf reads them) and base/secrets/gateway.env (the key's line, as `mlbuffet keys new` makes
it: name, scopes and SHA-256, never the key), both mode 600 and git-ignored; the
kustomization turns them into the Secrets nats-passwords and gateway-api-keys. The key itself
is printed once, here, and stored nowhere. Existing files are kept unless --force: rotating
passwords means restarting NATS and every role (docs/security.md). Needs mlbuffet installed.
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

from mlbuffet.apikeys import ApiKey, ApiKeyError, hash_key, new_key, parse_scopes
from mlbuffet.natsd.users import ROLE_NAMES, new_password, password_variable

HERE = Path(__file__).resolve().parent


def write_private(path: Path, text: str) -> None:
    """Create the file readable by its owner only, from its first byte."""
    path.parent.mkdir(parents=True, exist_ok=True)
    descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(descriptor, "w") as file:
        file.write(text)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--dir", type=Path, default=HERE / "base" / "secrets", help="default %(default)s"
    )
    parser.add_argument("--key-name", default="ops", help="name of the first API key")
    parser.add_argument("--scopes", default="read,predict,write,train,admin")
    parser.add_argument("--force", action="store_true", help="replace existing files")
    args = parser.parse_args(argv)
    nats_env, gateway_env = args.dir / "nats.env", args.dir / "gateway.env"
    existing = [str(p) for p in (nats_env, gateway_env) if p.exists()]
    if existing and not args.force:
        print(f"make_secrets: {', '.join(existing)} exist; --force replaces them", file=sys.stderr)
        return 1
    try:
        key = new_key()
        line = ApiKey(args.key_name, parse_scopes(args.scopes), hash_key(key)).line()
        ApiKey.from_line(line)  # the name is checked as the gateway will
    except ApiKeyError as exc:
        print(f"make_secrets: {exc}", file=sys.stderr)
        return 2
    passwords = "".join(f"{password_variable(role)}={new_password()}\n" for role in ROLE_NAMES)
    write_private(nats_env, passwords)
    write_private(gateway_env, f"MLBUFFET_API_KEYS={line}\n")
    print(f"wrote {nats_env} and {gateway_env}")
    print(f"API key {args.key_name!r} ({args.scopes}): {key}")
    print("  (give it to the client as 'Authorization: Bearer <key>'; it is not stored)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
