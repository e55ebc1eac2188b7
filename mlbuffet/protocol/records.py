"""Registry records: what the KV bucket `mlbuffet_models` holds for each model.

One key per model (the model name); its value is the JSON of a ModelRecord,
readable with `nats kv get mlbuffet_models iris`. The files themselves are in
the object store bucket `mlbuffet_model_files` as `<model>/<version>`.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from typing import Any

from mlbuffet.protocol.errors import InternalError, ModelNotFoundError, UnprocessableError

DYNAMIC = -1
"""A dimension whose size is decided per request (as in the Open Inference Protocol)."""


@dataclass(frozen=True, slots=True)
class TensorSpec:
    """One input or output of a model, as onnxruntime reports it."""

    name: str
    datatype: str
    """Wire datatype (FP32, INT64, BYTES, ...) or OBJECT for sequences and maps."""
    shape: tuple[int, ...]
    """Dimensions; DYNAMIC (-1) where the model leaves the size open."""
    onnx_type: str
    """onnxruntime's own type string, e.g. tensor(float) or seq(map(int64,tensor(float)))."""

    def describe(self) -> str:
        """How error messages name it, e.g. `x FP32 [-1, 4]`: what the caller should send."""
        return f"{self.name} {self.datatype} {list(self.shape)}"

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "datatype": self.datatype,
            "shape": list(self.shape),
            "onnx_type": self.onnx_type,
        }

    @classmethod
    def from_dict(cls, raw: Mapping[str, Any]) -> TensorSpec:
        return cls(
            name=_text(raw["name"]),
            datatype=_text(raw["datatype"]),
            shape=tuple(int(d) for d in raw["shape"]),
            onnx_type=_text(raw["onnx_type"]),
        )


@dataclass(frozen=True, slots=True)
class Signature:
    inputs: tuple[TensorSpec, ...]
    outputs: tuple[TensorSpec, ...]

    def to_dict(self) -> dict[str, Any]:
        return {
            "inputs": [s.to_dict() for s in self.inputs],
            "outputs": [s.to_dict() for s in self.outputs],
        }

    @classmethod
    def from_dict(cls, raw: Mapping[str, Any]) -> Signature:
        return cls(
            inputs=tuple(TensorSpec.from_dict(s) for s in raw["inputs"]),
            outputs=tuple(TensorSpec.from_dict(s) for s in raw["outputs"]),
        )


@dataclass(frozen=True, slots=True)
class VersionRecord:
    """One uploaded file of a model."""

    version: int
    sha256: str
    size: int
    """Bytes."""
    uploaded_at: str
    """ISO 8601, UTC."""
    description: str
    """The upload's own description (what changed in this version)."""
    library: str
    """Producer of the ONNX file as it declares itself, e.g. "skl2onnx 1.16.0"."""
    filename: str
    signature: Signature

    def to_dict(self) -> dict[str, Any]:
        return {
            "version": self.version,
            "sha256": self.sha256,
            "size": self.size,
            "uploaded_at": self.uploaded_at,
            "description": self.description,
            "library": self.library,
            "filename": self.filename,
            "signature": self.signature.to_dict(),
        }

    @classmethod
    def from_dict(cls, raw: Mapping[str, Any]) -> VersionRecord:
        return cls(
            version=int(raw["version"]),
            sha256=_text(raw["sha256"]),
            size=int(raw["size"]),
            uploaded_at=_text(raw["uploaded_at"]),
            description=_text(raw["description"]),
            library=_text(raw["library"]),
            filename=_text(raw["filename"]),
            signature=Signature.from_dict(raw["signature"]),
        )


MAX_BATCH_SIZE_LIMIT = 1024
MAX_QUEUE_DELAY_US_LIMIT = 1_000_000
MAX_THREADS_LIMIT = 256
MAX_REPLICAS_LIMIT = 1024
"""Far above any pool we run; it only keeps a typo from reading as a plan."""


@dataclass(frozen=True, slots=True)
class ModelSettings:
    """How modelhosts run a model: dynamic batching (Triton's knobs) and execution.

    Stored in the model's record as one `settings` object; a record without it
    (written before these existed) gets these defaults: no batching, and the
    host's own choice of threads and sessions.
    """

    max_batch_size: int = 1
    """Rows one batched run may hold; 1 turns batching off."""
    max_queue_delay_us: int = 0
    """How long the first request of a batch may wait for others to join it."""
    preferred_batch_sizes: tuple[int, ...] = ()
    """Row counts at which a batch is sent at once, without waiting out the delay."""
    intra_op_threads: int | None = None
    """Threads one run may use; None: the host's --intra-op-threads."""
    sessions: int | None = None
    """onnxruntime sessions (runs at once) per host; None: the host's cores / threads."""
    min_replicas: int = 1
    """Hosts that keep the model loaded while the pool has room; 0 lets an idle model be
    unloaded everywhere (its next request loads it again)."""
    max_replicas: int | None = None
    """Most hosts that may hold the model at once; None: every host."""

    FIELDS = (
        "max_batch_size",
        "max_queue_delay_us",
        "preferred_batch_sizes",
        "intra_op_threads",
        "sessions",
        "min_replicas",
        "max_replicas",
    )
    PLACEMENT_FIELDS = ("min_replicas", "max_replicas")
    """Settings of where a model runs, not how: changing them reloads nothing."""

    @property
    def batching(self) -> bool:
        return self.max_batch_size > 1

    def execution(self) -> ModelSettings:
        """These settings without the placement ones: what a loaded session was built with.

        A host compares these to decide whether a record change needs a reload,
        so moving `min_replicas` does not reload the model everywhere.
        """
        return replace(self, min_replicas=1, max_replicas=None)

    def to_dict(self) -> dict[str, Any]:
        return {
            "max_batch_size": self.max_batch_size,
            "max_queue_delay_us": self.max_queue_delay_us,
            "preferred_batch_sizes": list(self.preferred_batch_sizes),
            "intra_op_threads": self.intra_op_threads,
            "sessions": self.sessions,
            "min_replicas": self.min_replicas,
            "max_replicas": self.max_replicas,
        }

    @classmethod
    def from_dict(cls, raw: Mapping[str, Any]) -> ModelSettings:
        """Settings from user input or a record; UnprocessableError says which value is wrong."""
        if not isinstance(raw, Mapping):
            raise UnprocessableError("settings must be an object")
        unknown = [k for k in raw if k not in cls.FIELDS]
        if unknown:
            raise UnprocessableError(
                f"unknown setting {', '.join(map(repr, unknown))}; settings: {', '.join(cls.FIELDS)}"
            )
        max_batch = _whole(raw, "max_batch_size", 1, MAX_BATCH_SIZE_LIMIT, default=1)
        assert max_batch is not None
        delay = _whole(raw, "max_queue_delay_us", 0, MAX_QUEUE_DELAY_US_LIMIT, default=0)
        assert delay is not None
        preferred = raw.get("preferred_batch_sizes") or []
        if not isinstance(preferred, list | tuple) or not all(
            isinstance(p, int) and not isinstance(p, bool) and 1 <= p <= max_batch
            for p in preferred
        ):
            raise UnprocessableError(
                f"preferred_batch_sizes must be a list of whole numbers from 1 to max_batch_size ({max_batch})"
            )
        min_replicas = _whole(raw, "min_replicas", 0, MAX_REPLICAS_LIMIT, default=1)
        assert min_replicas is not None
        max_replicas = _whole(raw, "max_replicas", 1, MAX_REPLICAS_LIMIT)
        if max_replicas is not None and min_replicas > max_replicas:
            raise UnprocessableError(
                f"min_replicas ({min_replicas}) must not be above max_replicas ({max_replicas})"
            )
        return cls(
            max_batch_size=max_batch,
            max_queue_delay_us=delay,
            preferred_batch_sizes=tuple(sorted(set(preferred))),
            intra_op_threads=_whole(raw, "intra_op_threads", 1, MAX_THREADS_LIMIT),
            sessions=_whole(raw, "sessions", 1, MAX_THREADS_LIMIT),
            min_replicas=min_replicas,
            max_replicas=max_replicas,
        )

    def check_batchable(self, signature: Signature) -> None:
        """UnprocessableError unless the model's first dimension is dynamic everywhere.

        Batching stacks requests along dimension 0, so every input must take
        any number of rows, and every tensor output must give one per row.
        """
        if not self.batching:
            return
        fixed = [
            f"{kind} {s.name!r} {list(s.shape)}"
            for kind, specs in (("input", signature.inputs), ("output", signature.outputs))
            for s in specs
            if s.datatype != "OBJECT" and (not s.shape or s.shape[0] != DYNAMIC)
        ]
        if fixed:
            raise UnprocessableError(
                "dynamic batching needs a dynamic first dimension (-1) on every input and "
                f"output; this model has {', '.join(fixed)}: keep max_batch_size at 1"
            )


def _whole(
    raw: Mapping[str, Any], name: str, low: int, high: int, default: int | None = None
) -> int | None:
    value = raw.get(name)
    if value is None:
        return default
    if not isinstance(value, int) or isinstance(value, bool) or not low <= value <= high:
        raise UnprocessableError(f"{name} must be a whole number from {low} to {high}")
    return value


@dataclass(frozen=True, slots=True)
class ModelRecord:
    """A model: its versions, which one is the default, and its description."""

    TYPE = "mlbuffet.model_record.v1"

    name: str
    description: str
    default_version: int
    versions: Mapping[int, VersionRecord]
    next_version: int
    """Version numbers are never reused, even after a delete."""
    created_at: str
    updated_at: str
    serving: bool = True
    """Whether modelhosts serve the model; False after an unload (OIP repository extension).

    Absent from records written before the field existed, which means True.
    """
    settings: ModelSettings = field(default_factory=ModelSettings)
    extra: Mapping[str, Any] = field(default_factory=dict)
    """Fields written by newer MLBuffet releases, kept so an older writer does not drop them."""

    @property
    def default(self) -> VersionRecord:
        return self.versions[self.default_version]

    def version(self, version: int | None) -> VersionRecord:
        """The record of `version` (None: the default), or ModelNotFoundError."""
        number = self.default_version if version is None else version
        try:
            return self.versions[number]
        except KeyError:
            raise ModelNotFoundError(
                f"model {self.name!r} has no version {number}; "
                f"versions: {', '.join(map(str, sorted(self.versions)))}"
            ) from None

    def with_changes(self, **changes: Any) -> ModelRecord:
        return replace(self, **changes)

    def to_json(self) -> bytes:
        document = {
            **self.extra,
            "type": self.TYPE,
            "name": self.name,
            "description": self.description,
            "default_version": self.default_version,
            "next_version": self.next_version,
            "created_at": self.created_at,
            "updated_at": self.updated_at,
            "serving": self.serving,
            "versions": {str(v): r.to_dict() for v, r in sorted(self.versions.items())},
            "settings": self.settings.to_dict(),
        }
        return json.dumps(document, ensure_ascii=False, separators=(",", ":")).encode()

    @classmethod
    def from_json(cls, data: bytes) -> ModelRecord:
        """Parse a record; anything that is not a consistent record is an InternalError."""
        try:
            raw = json.loads(data)
            known = {
                "type",
                "name",
                "description",
                "default_version",
                "next_version",
                "created_at",
                "updated_at",
                "serving",
                "versions",
                "settings",
            }
            record = cls(
                name=_text(raw["name"]),
                description=_text(raw["description"]),
                default_version=int(raw["default_version"]),
                versions={int(v): VersionRecord.from_dict(r) for v, r in raw["versions"].items()},
                next_version=int(raw["next_version"]),
                created_at=_text(raw["created_at"]),
                updated_at=_text(raw["updated_at"]),
                serving=_flag(raw.get("serving", True)),
                settings=ModelSettings.from_dict(raw.get("settings") or {}),
                extra={k: v for k, v in raw.items() if k not in known},
            )
        except (
            ValueError,
            KeyError,
            TypeError,
            AttributeError,
            RecursionError,
            UnprocessableError,
        ) as exc:
            raise InternalError(f"corrupt registry record ({type(exc).__name__}: {exc})") from exc
        record.check()
        return record

    def check(self) -> None:
        """Raise InternalError unless the record is consistent (readers index it blindly)."""
        problems = []
        if self.versions and self.default_version not in self.versions:
            problems.append(f"default version {self.default_version} is not one of its versions")
        if any(number != r.version for number, r in self.versions.items()):
            problems.append("a version is filed under another number")
        if self.versions and self.next_version <= max(self.versions):
            problems.append(f"next version {self.next_version} was already given")
        if problems:
            raise InternalError(f"corrupt registry record of {self.name!r}: {'; '.join(problems)}")


def _flag(value: Any) -> bool:
    if not isinstance(value, bool):
        raise TypeError(f"expected true or false, got {type(value).__name__}")
    return value


def _text(value: Any) -> str:
    if not isinstance(value, str):
        raise TypeError(f"expected a string, got {type(value).__name__}")
    return value
