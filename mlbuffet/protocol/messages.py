"""Message schemas of the mesh and their msgpack encoding.

Every message is a msgpack map with a versioned `type` field, so the wire can
evolve: a reader accepts a map without `type` as the current version and
refuses a type it does not know. This is the only module that packs or
unpacks msgpack. docs/protocol.md documents each schema for programs that
speak to the mesh without importing MLBuffet.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, replace
from enum import Enum
from typing import Any, TypeVar

import msgpack

from mlbuffet.protocol.errors import BadRequestError, MLBuffetError, error_for_status
from mlbuffet.protocol.names import parse_node_id

_T = TypeVar("_T")


def _field(raw: Mapping[str, Any], name: str, kind: type[_T] | tuple[type, ...], what: str) -> Any:
    try:
        value = raw[name]
    except KeyError:
        raise BadRequestError(f"{what} has no {name!r} field") from None
    if not isinstance(value, kind) or (isinstance(value, bool) and kind is not bool):
        raise BadRequestError(f"{what}: field {name!r} has the wrong type")
    return value


def _optional(
    raw: Mapping[str, Any], name: str, kind: type[_T] | tuple[type, ...], what: str
) -> Any:
    if raw.get(name) is None:
        return None
    return _field(raw, name, kind, what)


def _finite(raw: Mapping[str, Any], name: str, what: str) -> float:
    """A number that is not NaN or infinite: times and intervals are compared and subtracted."""
    value = float(_field(raw, name, (int, float), what))
    if not math.isfinite(value):
        raise BadRequestError(f"{what}: field {name!r} must be a finite number")
    return value


def _check_type(raw: Mapping[str, Any], expected: str) -> None:
    found = raw.get("type", expected)
    if found != expected:
        raise BadRequestError(f"message type {found!r} is not {expected!r}")


@dataclass(frozen=True, slots=True)
class Tensor:
    """A tensor on the wire: raw little-endian bytes in C order (see tensors.py)."""

    name: str
    datatype: str
    shape: tuple[int, ...]
    data: bytes

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "datatype": self.datatype,
            "shape": list(self.shape),
            "data": self.data,
        }

    @classmethod
    def from_dict(cls, raw: Any) -> Tensor:
        if not isinstance(raw, Mapping):
            raise BadRequestError("a tensor must be a map")
        shape = _field(raw, "shape", list, "tensor")
        if not all(isinstance(d, int) and not isinstance(d, bool) for d in shape):
            raise BadRequestError("tensor shape must be a list of integers")
        return cls(
            name=_field(raw, "name", str, "tensor"),
            datatype=_field(raw, "datatype", str, "tensor"),
            shape=tuple(shape),
            data=_field(raw, "data", (bytes, bytearray), "tensor"),
        )


OBJECT_DATATYPE = "OBJECT"


@dataclass(frozen=True, slots=True)
class ObjectOutput:
    """A model output that is not a tensor (a sequence of maps, e.g. scikit-learn's ZipMap).

    `value` holds plain lists and maps; on the wire it is
    `{"name", "datatype": "OBJECT", "value"}`.
    """

    name: str
    value: Any

    def to_dict(self) -> dict[str, Any]:
        return {"name": self.name, "datatype": OBJECT_DATATYPE, "value": self.value}


Output = Tensor | ObjectOutput


def _output_from_dict(raw: Any) -> Output:
    if isinstance(raw, Mapping) and raw.get("datatype") == OBJECT_DATATYPE:
        return ObjectOutput(name=_field(raw, "name", str, "output"), value=raw.get("value"))
    return Tensor.from_dict(raw)


@dataclass(frozen=True, slots=True)
class InferRequest:
    """Subject mlbuffet.infer.<model>[.<version>]; the reply is an InferResponse or an error."""

    TYPE = "mlbuffet.infer_request.v1"

    model: str
    inputs: tuple[Tensor, ...]
    version: int | None = None
    outputs: tuple[str, ...] | None = None
    """Names of the outputs wanted; None means all of them."""
    id: str | None = None
    parameters: Mapping[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return {
            "type": self.TYPE,
            "model": self.model,
            "version": self.version,
            "inputs": [t.to_dict() for t in self.inputs],
            "outputs": None if self.outputs is None else list(self.outputs),
            "id": self.id,
            "parameters": dict(self.parameters),
        }

    @classmethod
    def from_dict(cls, raw: Mapping[str, Any]) -> InferRequest:
        _check_type(raw, cls.TYPE)
        what = "inference request"
        inputs = _field(raw, "inputs", list, what)
        outputs = _optional(raw, "outputs", list, what)
        if outputs is not None and not all(isinstance(o, str) for o in outputs):
            raise BadRequestError("inference request: 'outputs' must be a list of names")
        version = _optional(raw, "version", int, what)
        return cls(
            model=_field(raw, "model", str, what),
            inputs=tuple(Tensor.from_dict(t) for t in inputs),
            version=version,
            outputs=None if outputs is None else tuple(outputs),
            id=_optional(raw, "id", str, what),
            parameters=_optional(raw, "parameters", dict, what) or {},
        )


@dataclass(frozen=True, slots=True)
class InferResponse:
    TYPE = "mlbuffet.infer_response.v1"

    model: str
    version: int
    node: str
    """The modelhost that computed the answer."""
    outputs: tuple[Output, ...]
    id: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return {
            "type": self.TYPE,
            "model": self.model,
            "version": self.version,
            "node": self.node,
            "outputs": [o.to_dict() for o in self.outputs],
            "id": self.id,
        }

    @classmethod
    def from_dict(cls, raw: Mapping[str, Any]) -> InferResponse:
        _check_type(raw, cls.TYPE)
        what = "inference response"
        return cls(
            model=_field(raw, "model", str, what),
            version=_field(raw, "version", int, what),
            node=_field(raw, "node", str, what),
            outputs=tuple(_output_from_dict(o) for o in _field(raw, "outputs", list, what)),
            id=_optional(raw, "id", str, what),
        )


@dataclass(frozen=True, slots=True)
class EchoRequest:
    """Subject mlbuffet.test.echo: the seed's load-balancing test."""

    TYPE = "mlbuffet.echo_request.v1"

    data: Any

    def to_dict(self) -> dict[str, Any]:
        return {"type": self.TYPE, "data": self.data}

    @classmethod
    def from_dict(cls, raw: Mapping[str, Any]) -> EchoRequest:
        _check_type(raw, cls.TYPE)
        return cls(data=raw.get("data"))


@dataclass(frozen=True, slots=True)
class EchoReply:
    TYPE = "mlbuffet.echo_reply.v1"

    data: Any
    node: str

    def to_dict(self) -> dict[str, Any]:
        return {"type": self.TYPE, "data": self.data, "node": self.node}

    @classmethod
    def from_dict(cls, raw: Mapping[str, Any]) -> EchoReply:
        _check_type(raw, cls.TYPE)
        return cls(data=raw.get("data"), node=_field(raw, "node", str, "echo reply"))


@dataclass(frozen=True, slots=True)
class ModelEvent:
    """Subject mlbuffet.events.model.<model>: what happened to a model, and where."""

    TYPE = "mlbuffet.model_event.v1"

    UPLOADED = "uploaded"
    DEFAULT_CHANGED = "default-changed"
    DESCRIPTION_CHANGED = "description-changed"
    SETTINGS_CHANGED = "settings-changed"
    DELETED = "deleted"
    LOADED = "loaded"
    UNLOADED = "unloaded"

    event: str
    model: str
    version: int | None
    node: str
    at: float
    """Unix time in seconds."""

    def to_dict(self) -> dict[str, Any]:
        return {
            "type": self.TYPE,
            "event": self.event,
            "model": self.model,
            "version": self.version,
            "node": self.node,
            "at": self.at,
        }

    @classmethod
    def from_dict(cls, raw: Mapping[str, Any]) -> ModelEvent:
        _check_type(raw, cls.TYPE)
        what = "model event"
        return cls(
            event=_field(raw, "event", str, what),
            model=_field(raw, "model", str, what),
            version=_optional(raw, "version", int, what),
            node=_field(raw, "node", str, what),
            at=float(_field(raw, "at", (int, float), what)),
        )


@dataclass(frozen=True, slots=True)
class LoadedModel:
    """A model version a node has in memory."""

    model: str
    version: int

    def to_dict(self) -> dict[str, Any]:
        return {"model": self.model, "version": self.version}

    @classmethod
    def from_dict(cls, raw: Any) -> LoadedModel:
        if not isinstance(raw, Mapping):
            raise BadRequestError("a loaded model must be a map")
        return cls(
            model=_field(raw, "model", str, "loaded model"),
            version=_field(raw, "version", int, "loaded model"),
        )


@dataclass(frozen=True, slots=True)
class Heartbeat:
    """Subject mlbuffet.heartbeat.<role>.<node>: a node says it is alive, and how it is doing.

    Counters run from `started_at` and only grow, so a reader can take the
    difference of two heartbeats and add up several nodes' counters.
    """

    TYPE = "mlbuffet.heartbeat.v1"

    node: str
    role: str
    host: str
    pid: int
    version: str
    """MLBuffet's version."""
    started_at: float
    """Unix time the process started, in seconds."""
    at: float
    """Unix time of this heartbeat."""
    interval_s: float
    """Seconds until the next heartbeat: a reader declares the node down after missing a few."""
    cpu_percent: float
    """Process CPU time over wall time since the previous heartbeat (100 = one core)."""
    rss_bytes: int
    in_flight: int
    """Requests being served right now."""
    models: tuple[LoadedModel, ...] = ()
    counters: Mapping[str, Any] = field(default_factory=dict)
    """Role-specific counters since start (docs/protocol.md lists them)."""
    latency: Mapping[str, Any] = field(default_factory=dict)
    """Summary over every request since start: count, mean_s, p50_s, p99_s."""

    def to_dict(self) -> dict[str, Any]:
        return {
            "type": self.TYPE,
            "node": self.node,
            "role": self.role,
            "host": self.host,
            "pid": self.pid,
            "version": self.version,
            "started_at": self.started_at,
            "at": self.at,
            "interval_s": self.interval_s,
            "cpu_percent": self.cpu_percent,
            "rss_bytes": self.rss_bytes,
            "in_flight": self.in_flight,
            "models": [m.to_dict() for m in self.models],
            "counters": dict(self.counters),
            "latency": dict(self.latency),
        }

    @classmethod
    def from_dict(cls, raw: Mapping[str, Any]) -> Heartbeat:
        _check_type(raw, cls.TYPE)
        what = "heartbeat"
        # The metrics actor puts node and role in subjects and compares the times:
        # a heartbeat from anyone on the bus must not break either.
        interval_s = _finite(raw, "interval_s", what)
        if interval_s <= 0:
            raise BadRequestError("heartbeat: 'interval_s' must be positive")
        return cls(
            node=parse_node_id(_field(raw, "node", str, what)),
            role=parse_node_id(_field(raw, "role", str, what), "role"),
            host=_field(raw, "host", str, what),
            pid=_field(raw, "pid", int, what),
            version=_field(raw, "version", str, what),
            started_at=_finite(raw, "started_at", what),
            at=_finite(raw, "at", what),
            interval_s=interval_s,
            cpu_percent=_finite(raw, "cpu_percent", what),
            rss_bytes=_field(raw, "rss_bytes", int, what),
            in_flight=_field(raw, "in_flight", int, what),
            models=tuple(
                LoadedModel.from_dict(m) for m in _optional(raw, "models", list, what) or ()
            ),
            counters=_optional(raw, "counters", dict, what) or {},
            latency=_optional(raw, "latency", dict, what) or {},
        )


@dataclass(frozen=True, slots=True)
class NodeEvent:
    """Subject mlbuffet.events.node.<node>: the metrics actor saw a node come up or go down."""

    TYPE = "mlbuffet.node_event.v1"

    UP = "up"
    DOWN = "down"

    event: str
    node: str
    role: str
    at: float
    """Unix time in seconds."""
    last_seen: float
    """Unix time of the node's last heartbeat."""

    def to_dict(self) -> dict[str, Any]:
        return {
            "type": self.TYPE,
            "event": self.event,
            "node": self.node,
            "role": self.role,
            "at": self.at,
            "last_seen": self.last_seen,
        }

    @classmethod
    def from_dict(cls, raw: Mapping[str, Any]) -> NodeEvent:
        _check_type(raw, cls.TYPE)
        what = "node event"
        return cls(
            event=_field(raw, "event", str, what),
            node=_field(raw, "node", str, what),
            role=_field(raw, "role", str, what),
            at=float(_field(raw, "at", (int, float), what)),
            last_seen=float(_field(raw, "last_seen", (int, float), what)),
        )


@dataclass(frozen=True, slots=True)
class ClusterStatus:
    """Reply of mlbuffet.cluster.status: every node and every model, as the metrics actor sees them.

    `nodes` and `models` are lists of plain maps (docs/protocol.md has their fields).
    """

    TYPE = "mlbuffet.cluster_status.v1"

    node: str
    """The metrics actor that answered."""
    at: float
    nodes: tuple[Mapping[str, Any], ...] = ()
    models: tuple[Mapping[str, Any], ...] = ()

    def to_dict(self) -> dict[str, Any]:
        return {
            "type": self.TYPE,
            "node": self.node,
            "at": self.at,
            "nodes": [dict(n) for n in self.nodes],
            "models": [dict(m) for m in self.models],
        }

    @classmethod
    def from_dict(cls, raw: Mapping[str, Any]) -> ClusterStatus:
        _check_type(raw, cls.TYPE)
        what = "cluster status"
        nodes = _field(raw, "nodes", list, what)
        models = _field(raw, "models", list, what)
        if not all(isinstance(n, Mapping) for n in (*nodes, *models)):
            raise BadRequestError("cluster status: nodes and models must be maps")
        return cls(
            node=_field(raw, "node", str, what),
            at=float(_field(raw, "at", (int, float), what)),
            nodes=tuple(nodes),
            models=tuple(models),
        )


@dataclass(frozen=True, slots=True)
class SeriesRequest:
    """Request of mlbuffet.cluster.series: samples after `since` (Unix time; 0 for all kept)."""

    TYPE = "mlbuffet.series_request.v1"

    since: float = 0.0

    def to_dict(self) -> dict[str, Any]:
        return {"type": self.TYPE, "since": self.since}

    @classmethod
    def from_dict(cls, raw: Mapping[str, Any]) -> SeriesRequest:
        _check_type(raw, cls.TYPE)
        since = _optional(raw, "since", (int, float), "series request")
        return cls(since=0.0 if since is None else float(since))


@dataclass(frozen=True, slots=True)
class ClusterSeries:
    """Reply of mlbuffet.cluster.series: the metrics actor's recent samples, column by column.

    `times` are the samples' Unix times; each of `nodes` (by node id) and
    `models` (by `<model>:<version>`) maps a measure's name to one value per
    time, None where that node or version was not there. docs/protocol.md
    has the measures.
    """

    TYPE = "mlbuffet.cluster_series.v1"

    node: str
    interval_s: float
    times: tuple[float, ...] = ()
    nodes: Mapping[str, Mapping[str, list[Any]]] = field(default_factory=dict)
    models: Mapping[str, Mapping[str, list[Any]]] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return {
            "type": self.TYPE,
            "node": self.node,
            "interval_s": self.interval_s,
            "times": list(self.times),
            "nodes": {k: dict(v) for k, v in self.nodes.items()},
            "models": {k: dict(v) for k, v in self.models.items()},
        }

    @classmethod
    def from_dict(cls, raw: Mapping[str, Any]) -> ClusterSeries:
        _check_type(raw, cls.TYPE)
        what = "cluster series"
        times = _field(raw, "times", list, what)
        nodes = _field(raw, "nodes", dict, what)
        models = _field(raw, "models", dict, what)
        if not all(isinstance(t, int | float) for t in times):
            raise BadRequestError("cluster series: times must be numbers")
        for table in (nodes, models):
            if not all(isinstance(v, Mapping) for v in table.values()):
                raise BadRequestError("cluster series: every node and model must be a map")
        return cls(
            node=_field(raw, "node", str, what),
            interval_s=float(_field(raw, "interval_s", (int, float), what)),
            times=tuple(float(t) for t in times),
            nodes=nodes,
            models=models,
        )


Message = (
    InferRequest
    | InferResponse
    | EchoRequest
    | EchoReply
    | ModelEvent
    | Heartbeat
    | NodeEvent
    | ClusterStatus
    | ClusterSeries
    | SeriesRequest
)


def pack(message: Message | TrainingMessage) -> bytes:
    packed: bytes = msgpack.packb(message.to_dict(), use_bin_type=True)
    return packed


def pack_error(error: MLBuffetError) -> bytes:
    """An error reply: `{"error": {"code": <HTTP status>, "message": <text>}}`, plus
    `"kind"` for the errors that have one (`"overloaded"`)."""
    body: dict[str, Any] = {"code": int(error.status), "message": error.message}
    if error.kind is not None:
        body["kind"] = error.kind
    packed: bytes = msgpack.packb({"type": "mlbuffet.error.v1", "error": body}, use_bin_type=True)
    return packed


_ERROR_PREFIX = b"\x82" + msgpack.packb("type") + msgpack.packb("mlbuffet.error.v1")
"""How every error reply from pack_error starts: a reply is told from a result in O(1)."""


def error_status(payload: bytes) -> int | None:
    """The HTTP status of an error reply made by pack_error; None for any other payload."""
    if not payload.startswith(_ERROR_PREFIX):
        return None
    try:
        error = msgpack.unpackb(payload, raw=False).get("error")
        code = error.get("code") if isinstance(error, dict) else None
    except Exception:  # not ours after all: let unpack say what is wrong with it
        return None
    return code if isinstance(code, int) else None


def unpack_map(payload: bytes) -> dict[Any, Any]:
    """Decode a msgpack map, turning every kind of malformed input into a BadRequestError."""
    try:
        raw = msgpack.unpackb(payload, raw=False, strict_map_key=False)
    except Exception as exc:  # msgpack raises several unrelated types for bad input
        raise BadRequestError(f"payload is not valid msgpack ({type(exc).__name__})") from None
    if not isinstance(raw, dict):
        raise BadRequestError("payload must be a msgpack map")
    return raw


def raise_if_error(raw: Mapping[str, Any]) -> None:
    """Raise the MLBuffetError carried by an error reply; do nothing for other maps."""
    error = raw.get("error")
    if isinstance(error, Mapping):
        code = error.get("code")
        message = error.get("message")
        kind = error.get("kind")
        raise error_for_status(
            code if isinstance(code, int) else 500,
            message if isinstance(message, str) else "error without a message",
            kind if isinstance(kind, str) else None,
        )


_M = TypeVar("_M")


def unpack(payload: bytes, parse: Callable[[Mapping[str, Any]], _M]) -> _M:
    """Decode a reply or request with `parse` (a from_dict); error replies are raised."""
    raw = unpack_map(payload)
    raise_if_error(raw)
    return parse(raw)


# -- training jobs (the trainer actor; see docs/training.md) -----------------


class JobState(str, Enum):
    """Where a training job is: queued -> preparing -> running -> registering -> an end state."""

    QUEUED = "queued"
    PREPARING = "preparing"
    """Installing the job's requirements."""
    RUNNING = "running"
    REGISTERING = "registering"
    """Checking the output with onnxruntime and adding it to the registry."""
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    CANCELLED = "cancelled"

    @property
    def finished(self) -> bool:
        return self in _FINISHED

    @property
    def active(self) -> bool:
        """A trainer holds the job (it has claimed it and not finished it)."""
        return self in _ACTIVE


_FINISHED = frozenset({JobState.SUCCEEDED, JobState.FAILED, JobState.CANCELLED})
_ACTIVE = frozenset({JobState.PREPARING, JobState.RUNNING, JobState.REGISTERING})


def _strings(raw: Mapping[str, Any], name: str, what: str) -> tuple[str, ...]:
    values = _field(raw, name, list, what)
    if not all(isinstance(v, str) for v in values):
        raise BadRequestError(f"{what}: {name!r} must be a list of strings")
    return tuple(values)


def _number(raw: Mapping[str, Any], name: str, what: str) -> float | None:
    value = _optional(raw, name, (int, float), what)
    return None if value is None else float(value)


@dataclass(frozen=True, slots=True)
class TrainJob:
    """Subject mlbuffet.train.submit: a job whose input files are already in the Object Store.

    The submitter picks the job id (so it can upload the files first, under
    `<job>/input/<name>` in mlbuffet_train_files); the reply is a TrainAccepted.
    """

    TYPE = "mlbuffet.train_job.v1"

    job: str
    model: str
    script: str
    """File name of the training script among the inputs."""
    requirements: str
    """File name of the pip requirements among the inputs."""
    data: tuple[str, ...]
    """File names of the dataset and any other data files, the dataset first."""
    output_file: str = "model.onnx"
    """The file the script writes into its output folder."""
    description: str | None = None
    make_default: bool = True
    timeout_s: float | None = None
    """Wall-clock limit of the script; None takes the trainer's default."""

    def to_dict(self) -> dict[str, Any]:
        return {
            "type": self.TYPE,
            "job": self.job,
            "model": self.model,
            "script": self.script,
            "requirements": self.requirements,
            "data": list(self.data),
            "output_file": self.output_file,
            "description": self.description,
            "make_default": self.make_default,
            "timeout_s": self.timeout_s,
        }

    @property
    def inputs(self) -> tuple[str, ...]:
        """Every input file name: script, requirements, then the data files."""
        return (self.script, self.requirements, *self.data)

    @classmethod
    def from_dict(cls, raw: Mapping[str, Any]) -> TrainJob:
        _check_type(raw, cls.TYPE)
        what = "training job"
        make_default = _optional(raw, "make_default", bool, what)
        return cls(
            job=_field(raw, "job", str, what),
            model=_field(raw, "model", str, what),
            script=_field(raw, "script", str, what),
            requirements=_field(raw, "requirements", str, what),
            data=_strings(raw, "data", what),
            output_file=_optional(raw, "output_file", str, what) or "model.onnx",
            description=_optional(raw, "description", str, what),
            make_default=True if make_default is None else make_default,
            timeout_s=_number(raw, "timeout_s", what),
        )


@dataclass(frozen=True, slots=True)
class TrainAccepted:
    """The reply to a TrainJob: the job is queued in the jobs KV bucket."""

    TYPE = "mlbuffet.train_accepted.v1"

    job: str
    state: JobState
    node: str
    """The trainer that accepted it (any trainer may run it)."""

    def to_dict(self) -> dict[str, Any]:
        return {"type": self.TYPE, "job": self.job, "state": self.state.value, "node": self.node}

    @classmethod
    def from_dict(cls, raw: Mapping[str, Any]) -> TrainAccepted:
        _check_type(raw, cls.TYPE)
        what = "accepted job"
        return cls(
            job=_field(raw, "job", str, what),
            state=_job_state(_field(raw, "state", str, what)),
            node=_field(raw, "node", str, what),
        )


def _job_state(raw: str) -> JobState:
    try:
        return JobState(raw)
    except ValueError:
        raise BadRequestError(f"unknown job state {raw!r}") from None


@dataclass(frozen=True, slots=True)
class JobRecord:
    """A job's state: the value of key `<job>` in the mlbuffet_train_jobs KV bucket.

    Every change is a compare-and-set on the key's revision. Times are Unix
    seconds. `lease_until` is renewed by the trainer holding an active job;
    once it has passed, any trainer marks the job failed.
    """

    TYPE = "mlbuffet.job_record.v1"

    spec: TrainJob
    state: JobState
    submitted_at: float
    updated_at: float
    accepted_by: str
    node: str | None = None
    """The trainer running the job (None while queued)."""
    backend: str | None = None
    started_at: float | None = None
    finished_at: float | None = None
    exit_code: int | None = None
    version: int | None = None
    """The model version registered from the job's output."""
    reason: str | None = None
    """Why the job failed or was cancelled, in words a user can act on."""
    cancel_requested: bool = False
    lease_until: float | None = None

    @property
    def job(self) -> str:
        return self.spec.job

    def with_changes(self, **changes: Any) -> JobRecord:
        return replace(self, **changes)

    def to_dict(self) -> dict[str, Any]:
        return {
            "type": self.TYPE,
            "spec": self.spec.to_dict(),
            "state": self.state.value,
            "submitted_at": self.submitted_at,
            "updated_at": self.updated_at,
            "accepted_by": self.accepted_by,
            "node": self.node,
            "backend": self.backend,
            "started_at": self.started_at,
            "finished_at": self.finished_at,
            "exit_code": self.exit_code,
            "version": self.version,
            "reason": self.reason,
            "cancel_requested": self.cancel_requested,
            "lease_until": self.lease_until,
        }

    @classmethod
    def from_dict(cls, raw: Mapping[str, Any]) -> JobRecord:
        _check_type(raw, cls.TYPE)
        what = "job record"
        spec = _field(raw, "spec", dict, what)
        return cls(
            spec=TrainJob.from_dict(spec),
            state=_job_state(_field(raw, "state", str, what)),
            submitted_at=float(_field(raw, "submitted_at", (int, float), what)),
            updated_at=float(_field(raw, "updated_at", (int, float), what)),
            accepted_by=_field(raw, "accepted_by", str, what),
            node=_optional(raw, "node", str, what),
            backend=_optional(raw, "backend", str, what),
            started_at=_number(raw, "started_at", what),
            finished_at=_number(raw, "finished_at", what),
            exit_code=_optional(raw, "exit_code", int, what),
            version=_optional(raw, "version", int, what),
            reason=_optional(raw, "reason", str, what),
            cancel_requested=bool(_optional(raw, "cancel_requested", bool, what)),
            lease_until=_number(raw, "lease_until", what),
        )


@dataclass(frozen=True, slots=True)
class JobEvent:
    """Subject mlbuffet.events.train.<job>: a state change (with the record) or log lines.

    Log lines are numbered from 0 across the whole job: `seq` is the number of
    the first line in `lines`, so a reader that joins late can tell what it has.
    """

    TYPE = "mlbuffet.job_event.v1"

    STATE = "state"
    LOG = "log"

    job: str
    kind: str
    node: str
    at: float
    record: JobRecord | None = None
    seq: int = 0
    lines: tuple[str, ...] = ()

    def to_dict(self) -> dict[str, Any]:
        return {
            "type": self.TYPE,
            "job": self.job,
            "kind": self.kind,
            "node": self.node,
            "at": self.at,
            "record": None if self.record is None else self.record.to_dict(),
            "seq": self.seq,
            "lines": list(self.lines),
        }

    @classmethod
    def from_dict(cls, raw: Mapping[str, Any]) -> JobEvent:
        _check_type(raw, cls.TYPE)
        what = "job event"
        record = _optional(raw, "record", dict, what)
        return cls(
            job=_field(raw, "job", str, what),
            kind=_field(raw, "kind", str, what),
            node=_field(raw, "node", str, what),
            at=float(_field(raw, "at", (int, float), what)),
            record=None if record is None else JobRecord.from_dict(record),
            seq=_optional(raw, "seq", int, what) or 0,
            lines=_strings(raw, "lines", what) if raw.get("lines") is not None else (),
        )


TrainingMessage = TrainJob | TrainAccepted | JobRecord | JobEvent
