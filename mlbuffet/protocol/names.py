"""Model names and model references, validated before anything reaches NATS."""

from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass

from mlbuffet.protocol.errors import BadRequestError

MODEL_NAME_PATTERN = r"[A-Za-z0-9_-]{1,64}"
_MODEL_NAME = re.compile(MODEL_NAME_PATTERN)
_ONNX_SUFFIX = ".onnx"
MAX_VERSION = 2**31 - 1

RESERVED_NAMES = frozenset({"information"})
"""Names that collide with a REST route under /api/v1/models/."""


def parse_model_name(raw: str) -> str:
    """Return the model name in `raw`, without a trailing `.onnx` (the original API had one)."""
    name = raw[: -len(_ONNX_SUFFIX)] if raw.endswith(_ONNX_SUFFIX) else raw
    if not _MODEL_NAME.fullmatch(name):
        raise BadRequestError(
            f"invalid model name {raw!r}: use 1 to 64 letters, digits, '_' or '-'"
        )
    if name in RESERVED_NAMES:
        raise BadRequestError(f"invalid model name {raw!r}: {name!r} is reserved")
    return name


def parse_version(raw: str | int) -> int:
    """Return a version number: a positive integer."""
    if isinstance(raw, bool):
        raise BadRequestError(f"invalid version {raw!r}: versions are positive integers")
    if isinstance(raw, int):
        version = raw
    elif isinstance(raw, str) and raw.isascii() and raw.isdigit():
        version = int(raw)
    else:
        raise BadRequestError(f"invalid version {raw!r}: versions are positive integers")
    if not 1 <= version <= MAX_VERSION:
        raise BadRequestError(f"invalid version {raw!r}: versions are positive integers")
    return version


@dataclass(frozen=True, slots=True)
class ModelRef:
    """A model and, optionally, one of its versions: `iris`, `iris:3`, `iris:default`."""

    name: str
    version: int | None = None
    """None means the default version."""

    @classmethod
    def parse(cls, raw: str) -> ModelRef:
        name, sep, version = raw.partition(":")
        if not sep or version == "default":
            return cls(parse_model_name(name))
        return cls(parse_model_name(name), parse_version(version))

    def __str__(self) -> str:
        return self.name if self.version is None else f"{self.name}:{self.version}"


NODE_ID_PATTERN = r"[A-Za-z0-9_-]{1,128}"
"""A node id (and a role) is one subject token: heartbeats and events put it in their subject."""
_NODE_ID = re.compile(NODE_ID_PATTERN)


def parse_node_id(raw: str, what: str = "node id") -> str:
    """Return `raw` if it is a valid node id, else BadRequestError."""
    if not isinstance(raw, str) or not _NODE_ID.fullmatch(raw):
        raise BadRequestError(f"invalid {what} {raw!r}: use 1 to 128 letters, digits, '_' or '-'")
    return raw


JOB_ID_PATTERN = r"[A-Za-z0-9_-]{1,64}"
"""A training job id is one subject token, like a model name."""
_JOB_ID = re.compile(JOB_ID_PATTERN)


def parse_job_id(raw: str) -> str:
    """Return `raw` if it is a valid job id, else BadRequestError."""
    if not isinstance(raw, str) or not _JOB_ID.fullmatch(raw):
        raise BadRequestError(f"invalid job id {raw!r}: use 1 to 64 letters, digits, '_' or '-'")
    return raw


FILE_NAME_PATTERN = r"[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}"
"""A file a job reads or writes: a plain name in the job's folder, never a path."""
_FILE_NAME = re.compile(FILE_NAME_PATTERN)


def parse_file_name(raw: str, what: str = "file name") -> str:
    """Return `raw` if it is a plain file name (no folder, no leading dot), else BadRequestError."""
    if not isinstance(raw, str) or not _FILE_NAME.fullmatch(raw) or ".." in raw:
        raise BadRequestError(
            f"invalid {what} {raw!r}: use up to 128 letters, digits, '_', '-' or '.', "
            "not starting with '.' and without folders"
        )
    return raw


DEFAULT_OUTPUT_FILE = "model.onnx"
"""The file a training script writes when the job names none."""


def parse_train_target(raw_model: str, raw_output_file: str | None = None) -> tuple[str, str]:
    """The model a training job makes a new version of, and the file its script writes.

    `iris.onnx` alone is the original MLBuffet's first form (`/train/<model_name>`):
    model `iris`, from a script that writes `iris.onnx`. `iris` alone writes
    DEFAULT_OUTPUT_FILE; with an output file, as the original's
    `/train/<tag>/<model_name>`, the first part names the model (its "tag").
    """
    model = parse_model_name(raw_model)
    if raw_output_file is None:
        raw_output_file = raw_model if raw_model.endswith(_ONNX_SUFFIX) else DEFAULT_OUTPUT_FILE
    return model, parse_file_name(raw_output_file, "output file name")


MAX_UPLOAD_FILENAME_CHARS = 255
"""As most file systems: the name an uploaded model is stored (and downloaded) under."""


def parse_upload_filename(raw: str) -> str:
    """Return `raw` if it can be the name of an uploaded model file, else BadRequestError.

    The name is kept in the registry and given back on download: a plain file name,
    without folders, control characters or an endless length.
    """
    shown = raw if len(raw) <= 80 else raw[:80] + "..."
    if not raw or len(raw) > MAX_UPLOAD_FILENAME_CHARS:
        raise BadRequestError(
            f"invalid file name {shown!r}: give 1 to {MAX_UPLOAD_FILENAME_CHARS} characters"
        )
    if "/" in raw or "\\" in raw or raw in (".", ".."):
        raise BadRequestError(f"invalid file name {shown!r}: a file name, without folders")
    if any(unicodedata.category(c) in ("Cc", "Cf", "Cs", "Zl", "Zp") for c in raw):
        raise BadRequestError(f"invalid file name {shown!r}: it has control characters")
    return raw
