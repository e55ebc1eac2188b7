"""Node ids: how a process names itself in subjects, heartbeats and replies."""

from __future__ import annotations

import re
import secrets
import socket

_NOT_TOKEN = re.compile(r"[^A-Za-z0-9_-]+")


def new_node_id(role: str) -> str:
    """`<role>-<host>-<6 hex>`: unique per process, readable, and a valid subject token."""
    host = _NOT_TOKEN.sub("-", socket.gethostname()).strip("-")[:32] or "host"
    return f"{role}-{host}-{secrets.token_hex(3)}"
