"""Training jobs (the trainer actor; see docs/training.md): a submission, its acceptance,
the job's record in the jobs bucket and the events of its life."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, replace
from enum import Enum
from typing import Any

from mlbuffet.protocol.fields import (
    check_type,
    enum_field,
    optional_field,
    optional_number,
    required_field,
    string_list,
)
from mlbuffet.protocol.names import DEFAULT_OUTPUT_FILE


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


class JobEventKind(str, Enum):
    """What a JobEvent carries: the job's new record, or lines of its log."""

    STATE = "state"
    LOG = "log"


_FINISHED = frozenset({JobState.SUCCEEDED, JobState.FAILED, JobState.CANCELLED})


_ACTIVE = frozenset({JobState.PREPARING, JobState.RUNNING, JobState.REGISTERING})


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
    output_file: str = DEFAULT_OUTPUT_FILE
    """The file the script writes: into its output folder, or anywhere in its working folder."""
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
        check_type(raw, cls.TYPE)
        what = "training job"
        make_default = optional_field(raw, "make_default", bool, what)
        return cls(
            job=required_field(raw, "job", str, what),
            model=required_field(raw, "model", str, what),
            script=required_field(raw, "script", str, what),
            requirements=required_field(raw, "requirements", str, what),
            data=string_list(raw, "data", what),
            output_file=optional_field(raw, "output_file", str, what) or DEFAULT_OUTPUT_FILE,
            description=optional_field(raw, "description", str, what),
            make_default=True if make_default is None else make_default,
            timeout_s=optional_number(raw, "timeout_s", what),
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
        check_type(raw, cls.TYPE)
        what = "accepted job"
        return cls(
            job=required_field(raw, "job", str, what),
            state=enum_field(raw, "state", JobState, what, "job state"),
            node=required_field(raw, "node", str, what),
        )


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
        check_type(raw, cls.TYPE)
        what = "job record"
        spec = required_field(raw, "spec", dict, what)
        return cls(
            spec=TrainJob.from_dict(spec),
            state=enum_field(raw, "state", JobState, what, "job state"),
            submitted_at=float(required_field(raw, "submitted_at", (int, float), what)),
            updated_at=float(required_field(raw, "updated_at", (int, float), what)),
            accepted_by=required_field(raw, "accepted_by", str, what),
            node=optional_field(raw, "node", str, what),
            backend=optional_field(raw, "backend", str, what),
            started_at=optional_number(raw, "started_at", what),
            finished_at=optional_number(raw, "finished_at", what),
            exit_code=optional_field(raw, "exit_code", int, what),
            version=optional_field(raw, "version", int, what),
            reason=optional_field(raw, "reason", str, what),
            cancel_requested=bool(optional_field(raw, "cancel_requested", bool, what)),
            lease_until=optional_number(raw, "lease_until", what),
        )


@dataclass(frozen=True, slots=True)
class JobEvent:
    """Subject mlbuffet.events.train.<job>: a state change (with the record) or log lines.

    Log lines are numbered from 0 across the whole job: `seq` is the number of
    the first line in `lines`, so a reader that joins late can tell what it has.
    """

    TYPE = "mlbuffet.job_event.v1"

    STATE = JobEventKind.STATE
    LOG = JobEventKind.LOG

    job: str
    kind: JobEventKind
    node: str
    at: float
    record: JobRecord | None = None
    seq: int = 0
    lines: tuple[str, ...] = ()

    def to_dict(self) -> dict[str, Any]:
        return {
            "type": self.TYPE,
            "job": self.job,
            "kind": JobEventKind(self.kind).value,
            "node": self.node,
            "at": self.at,
            "record": None if self.record is None else self.record.to_dict(),
            "seq": self.seq,
            "lines": list(self.lines),
        }

    @classmethod
    def from_dict(cls, raw: Mapping[str, Any]) -> JobEvent:
        check_type(raw, cls.TYPE)
        what = "job event"
        record = optional_field(raw, "record", dict, what)
        return cls(
            job=required_field(raw, "job", str, what),
            kind=enum_field(raw, "kind", JobEventKind, what, "job event kind"),
            node=required_field(raw, "node", str, what),
            at=float(required_field(raw, "at", (int, float), what)),
            record=None if record is None else JobRecord.from_dict(record),
            seq=optional_field(raw, "seq", int, what) or 0,
            lines=string_list(raw, "lines", what) if raw.get("lines") is not None else (),
        )
