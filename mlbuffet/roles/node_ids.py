"""Node ids: how a process names itself in subjects, heartbeats and replies."""

from __future__ import annotations

import re
import secrets
import socket

_NOT_TOKEN = re.compile(r"[^A-Za-z0-9_-]+")


def _host() -> str:
    return _NOT_TOKEN.sub("-", socket.gethostname()).strip("-")[:32] or "host"


def new_node_id(role: str) -> str:
    """`<role>-<host>-<6 hex>`: unique per process, readable, and a valid subject token."""
    return f"{role}-{_host()}-{secrets.token_hex(3)}"


def stable_node_id(role: str, index: int) -> str:
    """`<role>-<host>-<index>`: the same after a restart, for roles that recognise their own work."""
    return f"{role}-{_host()}-{index}"
