"""Where jobs wait and who runs them: the queue, restarts, dead trainers, drains, cancels."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import pytest
from nats.aio.client import Client

from mlbuffet.protocol.errors import ConflictError, ServiceUnavailableError
from mlbuffet.protocol.jobs import JobRecord, JobState, TrainJob
from mlbuffet.training import JobNotFoundError, JobStore, new_job_id, submit_job
from tests.trainer.conftest import Submit, wait_for_state, whole_log

FINISHED = {"succeeded", "failed", "cancelled"}
QUICK = 'print("quick job")\n'
SLOW = 'import time\nprint("working", flush=True)\ntime.sleep(60)\n'


async def put_job(
    jobs: JobStore, tmp_path: Path, state: JobState = JobState.QUEUED, **changes: Any
) -> JobRecord:
    """A job written straight into the store, as a trainer that has since gone would leave it."""
    spec = TrainJob(
        job=new_job_id(),
        model="leftover",
        script="train.py",
        requirements="requirements.txt",
        data=("data.csv",),
        timeout_s=60,
    )
    for name, text in (("train.py", QUICK), ("requirements.txt", ""), ("data.csv", "a\n1\n")):
        path = tmp_path / f"{spec.job}-{name}"
        path.write_text(text)
        await jobs.put_input(spec.job, name, path)
    now = time.time()
    record = JobRecord(
        spec=spec,
        state=state,
        submitted_at=now,
        updated_at=now,
        accepted_by="trainer-gone",
        **changes,
    )
    await jobs.create(record)
    return record


async def test_a_trainer_restarted_under_its_node_id_fails_the_jobs_it_was_running(
    start_trainer: Any, jobs: JobStore, tmp_path: Path
) -> None:
    held = await put_job(
        jobs, tmp_path, JobState.RUNNING, node="trainer-a", lease_until=time.time() + 60
    )
    await start_trainer(node_id="trainer-a")
    record = await wait_for_state(jobs, held.job, FINISHED, timeout_s=10)
    assert record.state is JobState.FAILED
    assert "trainer trainer-a restarted while the job was running" in (record.reason or "")


async def test_jobs_of_a_trainer_whose_lease_ran_out_fail_and_live_ones_are_left_alone(
    start_trainer: Any, jobs: JobStore, tmp_path: Path
) -> None:
    dead = await put_job(
        jobs, tmp_path, JobState.PREPARING, node="trainer-dead", lease_until=time.time() - 1
    )
    alive = await put_job(
        jobs, tmp_path, JobState.RUNNING, node="trainer-alive", lease_until=time.time() + 60
    )
    await start_trainer()
    record = await wait_for_state(jobs, dead.job, FINISHED, timeout_s=10)
    assert record.state is JobState.FAILED
    assert "trainer trainer-dead stopped responding" in (record.reason or "")
    assert (await jobs.get(alive.job)).state is JobState.RUNNING


async def test_a_queued_job_is_run_by_a_trainer_started_after_it_was_accepted(
    start_trainer: Any, jobs: JobStore, tmp_path: Path
) -> None:
    queued = await put_job(jobs, tmp_path)
    await start_trainer()
    record = await wait_for_state(jobs, queued.job, FINISHED, timeout_s=120)
    # It ran: the script printed, and (writing no model) the job failed for that reason.
    assert "without writing 'model.onnx'" in (record.reason or "")
    assert "quick job" in await whole_log(jobs, queued.job)


async def test_jobs_beyond_the_concurrency_limit_queue_and_run_in_order(
    start_trainer: Any, submit: Submit, jobs: JobStore
) -> None:
    await start_trainer(max_jobs=1)
    first = await submit("first", script=SLOW, requirements="", timeout_s=3)
    second = await submit("second", script=QUICK, requirements="")
    await wait_for_state(jobs, first.job, {"running"}, timeout_s=120)
    assert (await jobs.get(second.job)).state is JobState.QUEUED
    one = await wait_for_state(jobs, first.job, FINISHED, timeout_s=120)
    two = await wait_for_state(jobs, second.job, FINISHED, timeout_s=120)
    assert one.finished_at is not None and two.started_at is not None
    assert two.started_at >= one.finished_at


async def test_a_draining_trainer_fails_the_job_it_could_not_finish(
    start_trainer: Any, submit: Submit, jobs: JobStore
) -> None:
    trainer = await start_trainer()
    accepted = await submit("unfinished", script=SLOW, requirements="")
    await wait_for_state(jobs, accepted.job, {"running"}, timeout_s=120)
    await trainer.drain(0.5)
    record = await jobs.get(accepted.job)
    assert record.state is JobState.FAILED
    assert record.reason == "the trainer stopped before the job finished"


async def test_a_queued_job_is_cancelled_at_once_and_never_runs(
    start_trainer: Any, jobs: JobStore, tmp_path: Path
) -> None:
    queued = await put_job(jobs, tmp_path)
    record = await jobs.request_cancel(queued.job, "test")
    assert record.state is JobState.CANCELLED
    with pytest.raises(ConflictError):
        await jobs.request_cancel(queued.job, "test")
    await start_trainer()
    assert (await jobs.get(queued.job)).started_at is None


async def test_a_submission_nobody_accepts_is_503_and_leaves_no_files(
    nc: Client, jobs: JobStore, tmp_path: Path
) -> None:
    script = tmp_path / "train.py"
    script.write_text(QUICK)
    spec = TrainJob(
        job=new_job_id(), model="m", script="train.py", requirements="r.txt", data=("d.csv",)
    )
    with pytest.raises(ServiceUnavailableError, match="no trainer is running"):
        await submit_job(
            nc, jobs, spec, {"train.py": script, "r.txt": script, "d.csv": script}, timeout_s=2
        )
    for name in spec.inputs:
        assert not await jobs.has_input(spec.job, name)


async def test_a_trainer_refuses_a_job_whose_files_are_missing_or_whose_timeout_is_too_long(
    start_trainer: Any, nc: Client, jobs: JobStore, tmp_path: Path
) -> None:
    from mlbuffet.protocol import subjects
    from mlbuffet.protocol.errors import UnprocessableError
    from mlbuffet.protocol.jobs import TrainAccepted
    from mlbuffet.protocol.wire import pack, unpack

    await start_trainer(max_timeout_s=100, default_timeout_s=50)
    spec = TrainJob(
        job=new_job_id(), model="m", script="train.py", requirements="r.txt", data=("d.csv",)
    )
    reply = await nc.request(subjects.train_submit(), pack(spec), timeout=5)
    with pytest.raises(
        UnprocessableError, match=r"'train.py' of job .* is not in the object store"
    ):
        unpack(reply.data, TrainAccepted.from_dict)

    path = tmp_path / "f"
    path.write_text("x")
    too_long = TrainJob(
        job=new_job_id(),
        model="m",
        script="train.py",
        requirements="r.txt",
        data=("d.csv",),
        timeout_s=1000,
    )
    with pytest.raises(UnprocessableError, match="timeout 1000 s"):
        await submit_job(nc, jobs, too_long, {n: path for n in too_long.inputs})
    # A refused job leaves neither a record nor its files behind.
    with pytest.raises(JobNotFoundError):
        await jobs.get(too_long.job)
    assert not await jobs.has_input(too_long.job, "train.py")


async def test_a_job_outlives_the_gateway_that_took_it(
    make_gateway: Any, start_trainer: Any, jobs: JobStore
) -> None:
    import aiohttp

    await start_trainer()
    first = await make_gateway()
    form = aiohttp.FormData()
    form.add_field("script", SLOW.encode(), filename="train.py")
    form.add_field("requirements", b"", filename="requirements.txt")
    form.add_field("dataset", b"x\n", filename="data.csv")
    form.add_field("timeout", "3")
    response = await first.post("/api/v1/train/outlived", data=form)
    assert response.status == 202
    job = (await response.json())["job"]
    await first.close()  # the gateway goes away; the job does not notice

    second = await make_gateway()
    await wait_for_state(jobs, job, FINISHED, timeout_s=120)
    status = await (await second.get(f"/api/v1/train/{job}")).json()
    assert status["state"] == "failed"
    assert "ran out of time (3 s)" in status["reason"]
    log = await (await second.get(f"/api/v1/train/{job}/logs")).text()
    assert "working" in log
