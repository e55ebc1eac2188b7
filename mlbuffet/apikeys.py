"""API keys of the REST gateway: scopes, the key file, hashing and constant-time checks.

A key is a random bearer token (`mlb_` + 43 URL-safe characters, 256 bits).
Only its SHA-256 is stored: the key has full entropy, so a plain hash is as
strong as a slow one and costs nothing per request. A key file has one key
per line, `<name> <scope>[,<scope>...] sha256:<hex>`; `#` starts a comment.
The same lines, separated by newlines or `;`, may come in MLBUFFET_API_KEYS.

Shared by the gateway (checks keys) and the CLI (`mlbuffet keys new`), so it
lives in mlbuffet, not in gateway.
"""

from __future__ import annotations

import argparse
import hashlib
import hmac
import re
import secrets
from collections.abc import Mapping
from dataclasses import dataclass
from enum import Enum
from pathlib import Path

KEY_PREFIX = "mlb_"
KEY_BYTES = 32
HASH_PREFIX = "sha256:"
_NAME = re.compile(r"[A-Za-z0-9_.@-]{1,64}")
_HEX = re.compile(r"[0-9a-f]{64}")


class Scope(str, Enum):
    """What a key may do. ADMIN grants every other scope; the rest are independent."""

    PUBLIC = "public"
    """Needs no key at all (probes, the welcome, /help); never given to a key."""
    READ = "read"
    PREDICT = "predict"
    WRITE = "write"
    TRAIN = "train"
    ADMIN = "admin"


GRANTABLE = tuple(s for s in Scope if s is not Scope.PUBLIC)


class ApiKeyError(ValueError):
    """A key file or key line that cannot be used; the message says where and why."""


def hash_key(key: str) -> str:
    return hashlib.sha256(key.encode()).hexdigest()


def new_key() -> str:
    return KEY_PREFIX + secrets.token_urlsafe(KEY_BYTES)


def parse_scopes(raw: str) -> frozenset[Scope]:
    scopes = set()
    for word in raw.split(","):
        word = word.strip().lower()
        if not word:
            continue
        try:
            scope = Scope(word)
        except ValueError:
            raise ApiKeyError(
                f"unknown scope {word!r}: use {', '.join(s.value for s in GRANTABLE)}"
            ) from None
        if scope is Scope.PUBLIC:
            raise ApiKeyError("'public' is not a scope a key can have")
        scopes.add(scope)
    if not scopes:
        raise ApiKeyError("give at least one scope")
    return frozenset(scopes)


@dataclass(frozen=True, slots=True)
class ApiKey:
    name: str
    scopes: frozenset[Scope]
    digest: str
    """Hex SHA-256 of the key; the key itself is never kept."""

    def allows(self, scope: Scope) -> bool:
        return scope is Scope.PUBLIC or scope in self.scopes or Scope.ADMIN in self.scopes

    def line(self) -> str:
        scopes = ",".join(s.value for s in GRANTABLE if s in self.scopes)
        return f"{self.name} {scopes} {HASH_PREFIX}{self.digest}"

    @classmethod
    def from_line(cls, line: str) -> ApiKey:
        key = parse_line(line, "key")
        if key is None:
            raise ApiKeyError("empty key line")
        return key

    def __repr__(self) -> str:  # the digest is not secret, but has no business in logs
        return f"ApiKey({self.name!r}, {sorted(s.value for s in self.scopes)})"


def parse_line(line: str, where: str) -> ApiKey | None:
    """One key of a key file, or None for a blank or comment line."""
    text = line.split("#", 1)[0].strip()
    if not text:
        return None
    words = text.split()
    if len(words) != 3:
        raise ApiKeyError(f"{where}: expected '<name> <scopes> sha256:<hex>'")
    name, scopes, digest = words
    if not _NAME.fullmatch(name):
        raise ApiKeyError(f"{where}: key name {name!r} is not [A-Za-z0-9_.@-]{{1,64}}")
    if not digest.startswith(HASH_PREFIX) or not _HEX.fullmatch(digest[len(HASH_PREFIX) :]):
        raise ApiKeyError(
            f"{where}: the third field must be sha256:<64 lowercase hex digits> (never the key itself)"
        )
    try:
        parsed = parse_scopes(scopes)
    except ApiKeyError as exc:
        raise ApiKeyError(f"{where}: {exc}") from None
    return ApiKey(name, parsed, digest[len(HASH_PREFIX) :])


@dataclass(frozen=True, slots=True)
class KeyRing:
    """Every key the gateway accepts."""

    keys: tuple[ApiKey, ...] = ()

    def __post_init__(self) -> None:
        names = [k.name for k in self.keys]
        for name in names:
            if names.count(name) > 1:
                raise ApiKeyError(f"key name {name!r} is given twice")
        digests = [k.digest for k in self.keys]
        if len(set(digests)) != len(digests):
            raise ApiKeyError("the same key is listed twice under different names")

    def __bool__(self) -> bool:
        return bool(self.keys)

    def find(self, presented: str) -> ApiKey | None:
        """The key whose hash matches; every stored hash is compared, in constant time each."""
        digest = hash_key(presented).encode()
        found = None
        for key in self.keys:
            if hmac.compare_digest(digest, key.digest.encode()):
                found = key
        return found

    @classmethod
    def parse(cls, text: str, source: str) -> KeyRing:
        keys = []
        for number, line in enumerate(re.split(r"[\n;]", text), start=1):
            key = parse_line(line, f"{source}:{number}")
            if key is not None:
                keys.append(key)
        return cls(tuple(keys))

    @classmethod
    def load(cls, file: str | None, inline: str | None) -> KeyRing:
        """Keys from a file and from MLBUFFET_API_KEYS lines, together."""
        keys: list[ApiKey] = []
        if file:
            try:
                text = Path(file).read_text()
            except OSError as exc:
                raise ApiKeyError(f"--api-keys {file}: {exc.strerror}") from None
            keys += cls.parse(text, file).keys
        if inline:
            keys += cls.parse(inline, "MLBUFFET_API_KEYS").keys
        return cls(tuple(keys))


def add_api_key_arguments(parser: argparse.ArgumentParser, environ: Mapping[str, str]) -> None:
    """--api-keys, --insecure and --cors-origin: shared by `mlbuffet gateway` and `mlbuffet up`."""
    group = parser.add_argument_group("REST API security (docs/security.md)")
    group.add_argument(
        "--api-keys",
        metavar="FILE",
        default=environ.get("MLBUFFET_API_KEYS_FILE"),
        help="file of accepted API keys, one '<name> <scopes> sha256:<hex>' a line "
        "(MLBUFFET_API_KEYS_FILE; MLBUFFET_API_KEYS may hold such lines too); none: auth off",
    )
    group.add_argument(
        "--insecure",
        action="store_true",
        default=environ.get("MLBUFFET_INSECURE", "").lower() in ("1", "true", "yes"),
        help="allow listening beyond loopback without API keys (MLBUFFET_INSECURE=1)",
    )
    group.add_argument(
        "--cors-origin",
        action="append",
        metavar="ORIGIN",
        default=None,
        help="a browser origin allowed to call the API, e.g. https://app.example.com; repeat "
        "for more (MLBUFFET_CORS_ORIGINS, comma separated; default: CORS off)",
    )


def api_keys_from(args: argparse.Namespace, environ: Mapping[str, str]) -> KeyRing:
    return KeyRing.load(args.api_keys, environ.get("MLBUFFET_API_KEYS"))


def cors_origins_from(args: argparse.Namespace, environ: Mapping[str, str]) -> tuple[str, ...]:
    if args.cors_origin:
        return tuple(args.cors_origin)
    raw = environ.get("MLBUFFET_CORS_ORIGINS", "")
    return tuple(o.strip() for o in raw.split(",") if o.strip())


def refuse_open_listen(host: str) -> str:
    """Why a REST port beyond loopback without keys is refused, and what to do."""
    return (
        f"--host {host} listens beyond loopback, but no API keys are configured: give "
        "--api-keys FILE (see `mlbuffet keys new`), or --insecure to run without auth"
    )


def auth_summary(keys: KeyRing, open_to_network: bool) -> str:
    """How the REST API is protected, for the start-up output of the gateway and `up`."""
    if keys:
        return f"API keys on ({len(keys.keys)} keys)"
    if open_to_network:
        return (
            "WARNING: API keys off and listening beyond loopback (--insecure): "
            "anyone who reaches the port may upload, delete and predict"
        )
    return "API keys off (loopback only)"
