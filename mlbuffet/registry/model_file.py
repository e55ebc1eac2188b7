"""A model file that onnxruntime has loaded, on its way to becoming a registry version."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from mlbuffet.protocol.records import Signature


@dataclass(frozen=True, slots=True)
class ModelFile:
    """An ONNX file checked by onnxruntime, ready to become a version (see inspect.py)."""

    path: Path
    sha256: str
    size: int
    signature: Signature
    description: str
    """The model's own description from its ONNX metadata, often empty."""
    library: str
