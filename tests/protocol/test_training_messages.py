"""The training messages through pack/unpack, and what a reader refuses."""

from __future__ import annotations

import msgpack
import pytest

from mlbuffet.protocol import subjects
from mlbuffet.protocol.errors import BadRequestError
from mlbuffet.protocol.jobs import JobEvent, JobRecord, JobState, TrainAccepted, TrainJob
from mlbuffet.protocol.names import parse_file_name, parse_job_id
from mlbuffet.protocol.wire import pack, unpack

SPEC = TrainJob(
    job="0a1b2c",
    model="iris",
    script="train.py",
    requirements="requirements.txt",
    data=("iris.csv", "extra.json"),
    output_file="classifier.onnx",
    description="logistic regression",
    make_default=False,
    timeout_s=120.0,
)
RECORD = JobRecord(
    spec=SPEC,
    state=JobState.RUNNING,
    submitted_at=1.0,
    updated_at=2.5,
    accepted_by="trainer-a",
    node="trainer-b",
    backend="process",
    started_at=2.0,
    exit_code=None,
    lease_until=47.0,
)


@pytest.mark.parametrize(
    "message",
    [
        SPEC,
        TrainJob(job="j", model="m", script="t.py", requirements="r.txt", data=("d",)),
        TrainAccepted(job="j", state=JobState.QUEUED, node="trainer-a"),
        RECORD,
        RECORD.with_changes(
            state=JobState.SUCCEEDED, finished_at=9.0, exit_code=0, version=3, lease_until=None
        ),
        JobEvent(job="j", kind=JobEvent.STATE, node="n", at=3.0, record=RECORD),
        JobEvent(job="j", kind=JobEvent.LOG, node="n", at=3.0, seq=10, lines=("a", "b")),
    ],
)
def test_training_messages_survive_the_wire(message: object) -> None:
    parse = type(message).from_dict  # type: ignore[attr-defined]
    assert unpack(pack(message), parse) == message  # type: ignore[arg-type]


def test_a_job_without_optional_fields_takes_the_defaults() -> None:
    raw = {"job": "j", "model": "m", "script": "t.py", "requirements": "r", "data": ["d"]}
    spec = unpack(msgpack.packb(raw), TrainJob.from_dict)
    assert spec.output_file == "model.onnx"
    assert spec.make_default is True
    assert spec.timeout_s is None
    assert spec.inputs == ("t.py", "r", "d")


def test_an_unknown_job_state_is_refused() -> None:
    raw = RECORD.to_dict() | {"state": "paused"}
    with pytest.raises(BadRequestError, match="unknown job state 'paused'"):
        unpack(msgpack.packb(raw), JobRecord.from_dict)


def test_finished_and_active_states() -> None:
    assert {s for s in JobState if s.finished} == {"succeeded", "failed", "cancelled"}
    assert {s for s in JobState if s.active} == {"preparing", "running", "registering"}
    assert not JobState.QUEUED.finished and not JobState.QUEUED.active


@pytest.mark.parametrize("bad", ["", "../x", ".hidden", "a/b", "x" * 200, "sp ace"])
def test_file_names_are_plain_names(bad: str) -> None:
    with pytest.raises(BadRequestError):
        parse_file_name(bad)


@pytest.mark.parametrize("bad", ["", "a.b", "a b", "x" * 65, "*", ">"])
def test_job_ids_are_one_subject_token(bad: str) -> None:
    with pytest.raises(BadRequestError):
        parse_job_id(bad)


def test_training_subjects_and_objects() -> None:
    assert subjects.train_submit() == "mlbuffet.train.submit"
    assert subjects.train_events("j1") == "mlbuffet.events.train.j1"
    assert subjects.train_input("j1", "iris.csv") == "j1/input/iris.csv"
    assert subjects.train_log("j1") == "j1/log"
