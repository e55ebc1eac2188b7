"""Jobs that go wrong end as failed (or cancelled) with a reason, a kept log and no new version."""

from __future__ import annotations

import asyncio
import contextlib
import os
import socket
from typing import Any

import aiodocker
import pytest

from mlbuffet.protocol.errors import ModelNotFoundError
from mlbuffet.registry import Registry
from mlbuffet.training import JobStore
from tests.trainer.conftest import Submit, wait_for_state, whole_log

FINISHED = {"succeeded", "failed", "cancelled"}

FAILING = """\
print("loading the data", flush=True)
raise SystemExit(3)
"""

SLEEPING = """\
import os, time
print(f"pid {os.getpid()}", flush=True)
time.sleep(120)
"""

NO_OUTPUT = 'print("done, but nothing written")\n'

NOT_ONNX = """\
import sys
with open(sys.argv[1], "wb") as f:
    f.write(b"this is not an ONNX model")
"""

REACH_OUT = """\
import socket, sys
try:
    socket.create_connection(("127.0.0.1", {port}), timeout=3).close()
except OSError as exc:
    print(f"BLOCKED {{exc}}", flush=True)
    sys.exit(4)
print("CONNECTED", flush=True)
sys.exit(5)
"""


@pytest.fixture(params=["process", "docker"])
async def trainer(request: pytest.FixtureRequest, start_trainer: Any) -> Any:
    """A trainer on each backend (the docker one builds or reuses the test image)."""
    if request.param == "docker":
        return await start_trainer(**request.getfixturevalue("docker_settings"))
    return await start_trainer(backend="process")


async def assert_no_model(registry: Registry, name: str) -> None:
    with pytest.raises(ModelNotFoundError):
        await registry.get(name)


async def test_a_failing_script_fails_the_job_keeps_its_log_and_registers_nothing(
    trainer: Any, submit: Submit, jobs: JobStore, registry: Registry
) -> None:
    accepted = await submit("broken", script=FAILING, requirements="")
    record = await wait_for_state(jobs, accepted.job, FINISHED)
    assert record.state.value == "failed"
    assert record.exit_code == 3
    assert record.reason == "the script exited with code 3"
    log = await whole_log(jobs, accepted.job)
    assert "loading the data" in log
    assert "[trainer] failed: the script exited with code 3" in log
    await assert_no_model(registry, "broken")


async def test_a_script_over_its_time_limit_is_stopped_and_fails(
    trainer: Any, submit: Submit, jobs: JobStore, registry: Registry
) -> None:
    accepted = await submit("slow", script=SLEEPING, requirements="", timeout_s=2)
    record = await wait_for_state(jobs, accepted.job, FINISHED, timeout_s=120)
    assert record.state.value == "failed"
    assert "ran out of time (2 s)" in (record.reason or "")
    assert record.finished_at is not None and record.started_at is not None
    await assert_no_model(registry, "slow")


async def test_cancelling_a_running_job_stops_its_process_or_container(
    trainer: Any, submit: Submit, jobs: JobStore, registry: Registry
) -> None:
    accepted = await submit("cancelled", script=SLEEPING, requirements="")
    await wait_for_state(jobs, accepted.job, {"running"}, timeout_s=120)
    pid = None
    for _ in range(200):
        log = await whole_log(jobs, accepted.job)
        if "pid " in log:
            pid = int(log.split("pid ", 1)[1].split()[0])
            break
        await asyncio.sleep(0.05)
    assert pid is not None, "the script never started"

    requested = await jobs.request_cancel(accepted.job, "test")
    assert requested.cancel_requested
    record = await wait_for_state(jobs, accepted.job, FINISHED, timeout_s=30)
    assert record.state.value == "cancelled"
    assert record.reason == "cancelled by request"
    await assert_no_model(registry, "cancelled")

    if trainer.backend.name == "process":
        with pytest.raises(ProcessLookupError):
            os.kill(pid, 0)
    else:
        async with aiodocker.Docker() as docker:
            left = await docker.containers.list(
                all=True, filters={"label": [f"mlbuffet.job={accepted.job}"]}
            )
        assert left == []


async def test_a_script_that_writes_no_output_fails_the_job(
    trainer: Any, submit: Submit, jobs: JobStore, registry: Registry
) -> None:
    accepted = await submit("nothing", script=NO_OUTPUT, requirements="")
    record = await wait_for_state(jobs, accepted.job, FINISHED)
    assert record.state.value == "failed"
    assert record.exit_code == 0
    assert "without writing 'model.onnx'" in (record.reason or "")
    await assert_no_model(registry, "nothing")


async def test_an_output_that_is_not_onnx_fails_the_job_with_the_reason(
    trainer: Any, submit: Submit, jobs: JobStore, registry: Registry
) -> None:
    accepted = await submit("garbage", script=NOT_ONNX, requirements="")
    record = await wait_for_state(jobs, accepted.job, FINISHED)
    assert record.state.value == "failed"
    assert "not an ONNX model onnxruntime can load" in (record.reason or "")
    assert "model.onnx" in (record.reason or "")
    await assert_no_model(registry, "garbage")


async def test_a_running_script_cannot_reach_the_network(
    trainer: Any, submit: Submit, jobs: JobStore
) -> None:
    # A listener on this machine's loopback that the script tries to reach.
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen()
    listener.setblocking(False)
    port = listener.getsockname()[1]
    try:
        accepted = await submit("offline", script=REACH_OUT.format(port=port), requirements="")
        record = await wait_for_state(jobs, accepted.job, FINISHED)
        log = await whole_log(jobs, accepted.job)
        assert record.exit_code == 4, log
        assert "BLOCKED" in log
        with pytest.raises(BlockingIOError):
            listener.accept()
    finally:
        with contextlib.suppress(OSError):
            listener.close()


SHOW_ENVIRONMENT = """\
import os
for name in sorted(os.environ):
    print(f"{name}={os.environ[name]}")
"""

GREEDY = """\
print("allocating 1 GiB", flush=True)
hog = b"x" * (1 << 30)
print("allocated", len(hog), flush=True)
"""


async def test_the_script_sees_none_of_the_trainers_environment(
    monkeypatch: pytest.MonkeyPatch, start_trainer: Any, submit: Submit, jobs: JobStore
) -> None:
    monkeypatch.setenv("MLBUFFET_NATS_PASSWORD", "hunter2")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "hunter3")
    await start_trainer(backend="process")
    accepted = await submit("env", script=SHOW_ENVIRONMENT, requirements="")
    await wait_for_state(jobs, accepted.job, FINISHED)
    log = await whole_log(jobs, accepted.job)
    assert "MLBUFFET_OUTPUT_FILE=" in log
    assert "hunter" not in log
    assert "NATS" not in log and "AWS" not in log


@pytest.mark.parametrize("backend", ["process", "docker"])
async def test_a_script_over_its_memory_limit_fails(
    request: pytest.FixtureRequest,
    backend: str,
    start_trainer: Any,
    submit: Submit,
    jobs: JobStore,
) -> None:
    settings: dict[str, Any] = {"backend": "process"}
    if backend == "docker":
        settings = dict(request.getfixturevalue("docker_settings"))
    await start_trainer(**{**settings, "memory_bytes": 512 * 1024 * 1024})
    accepted = await submit("greedy", script=GREEDY, requirements="")
    record = await wait_for_state(jobs, accepted.job, FINISHED)
    log = await whole_log(jobs, accepted.job)
    assert record.state.value == "failed", log
    assert "allocated" not in log.replace("allocating", "")
    if backend == "process":
        assert "MemoryError" in log
    else:
        assert "ran out of memory (512 MiB)" in log
