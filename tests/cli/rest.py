"""A small blocking REST client for the end-to-end tests (urllib: no session to leak)."""

from __future__ import annotations

import json
import secrets
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

TIMEOUT_S = 10.0


def call(
    method: str,
    url: str,
    body: Any = None,
    *,
    files: dict[str, Path] | None = None,
    fields: dict[str, str] | None = None,
    timeout_s: float = TIMEOUT_S,
) -> tuple[int, Any]:
    """Send one request; returns the status and the decoded JSON answer (or the raw bytes)."""
    headers: dict[str, str] = {}
    data: bytes | None = None
    if files is not None or fields is not None:
        data, content_type = multipart(fields or {}, files or {})
        headers["Content-Type"] = content_type
    elif body is not None:
        data = json.dumps(body).encode()
        headers["Content-Type"] = "application/json"
    request = urllib.request.Request(url, data=data, method=method, headers=headers)
    try:
        with urllib.request.urlopen(request, timeout=timeout_s) as response:
            status, raw, kind = (
                response.status,
                response.read(),
                response.headers.get_content_type(),
            )
    except urllib.error.HTTPError as error:
        status, raw, kind = error.code, error.read(), error.headers.get_content_type()
    return status, (json.loads(raw) if kind == "application/json" else raw)


def ok(method: str, url: str, body: Any = None, **kwargs: Any) -> Any:
    """`call`, asserting a 2xx answer; returns the answer."""
    status, answer = call(method, url, body, **kwargs)
    assert 200 <= status < 300, (method, url, status, answer)
    return answer


def predict(rest: str, model: str, values: list[Any], timeout_s: float = TIMEOUT_S) -> Any:
    answer = ok(
        "POST", f"{rest}/api/v1/models/{model}/prediction", {"values": values}, timeout_s=timeout_s
    )
    return answer["values"]


def multipart(fields: dict[str, str], files: dict[str, Path]) -> tuple[bytes, str]:
    boundary = f"mlbuffet-{secrets.token_hex(8)}"
    parts: list[bytes] = []
    for name, value in fields.items():
        parts.append(
            f'--{boundary}\r\nContent-Disposition: form-data; name="{name}"\r\n\r\n{value}\r\n'.encode()
        )
    for name, path in files.items():
        parts.append(
            (
                f"--{boundary}\r\nContent-Disposition: form-data; "
                f'name="{name}"; filename="{path.name}"\r\n'
                "Content-Type: application/octet-stream\r\n\r\n"
            ).encode()
            + path.read_bytes()
            + b"\r\n"
        )
    parts.append(f"--{boundary}--\r\n".encode())
    return b"".join(parts), f"multipart/form-data; boundary={boundary}"
