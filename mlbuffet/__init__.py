"""MLBuffet: an ONNX model server built as a NATS actor mesh.

`mlbuffet.Client` and `mlbuffet.SyncClient` are loaded on first use, so that
`import mlbuffet` (which every role does) stays light.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from mlbuffet.client import Client, InferResult, SyncClient
    from mlbuffet.protocol.errors import MLBuffetError

_LAZY = {
    "Client": "mlbuffet.client",
    "SyncClient": "mlbuffet.client",
    "InferResult": "mlbuffet.client",
    "MLBuffetError": "mlbuffet.protocol.errors",
}

__all__ = ["Client", "InferResult", "MLBuffetError", "SyncClient"]


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'mlbuffet' has no attribute {name!r}")
    return getattr(importlib.import_module(module), name)
