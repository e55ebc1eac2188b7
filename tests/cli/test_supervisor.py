"""The child-process machinery of `mlbuffet up`, on small real Python processes."""

from __future__ import annotations

import asyncio
import re
import signal
import sys

import pytest

from mlbuffet.cli.process import ChildExitedError, ChildProcess, ChildSpec, Console
from mlbuffet.cli.supervisor import RestartPolicy, Supervisor, stop_in_order
from tests.cli.conftest import alive

pytestmark = pytest.mark.processes

READY = re.compile(r"^ready (\d+)$")
FAST = RestartPolicy(first_delay_s=0.01, max_delay_s=0.05, fast_crash_s=10, max_fast_crashes=2)


def python_child(name: str, code: str) -> ChildProcess:
    """A child that runs `code` after announcing `ready <pid>` like a role does."""
    program = f"import os, signal, sys, time; print('ready', os.getpid(), flush=True); {code}"
    return ChildProcess(ChildSpec(name, (sys.executable, "-c", program), READY), Console())


def test_restart_delays_double_up_to_the_cap() -> None:
    policy = RestartPolicy(first_delay_s=0.5, max_delay_s=8.0)
    assert [policy.delay_s(n) for n in range(1, 7)] == [0.5, 1.0, 2.0, 4.0, 8.0, 8.0]


async def test_a_child_that_dies_before_its_ready_line_says_why(
    capsys: pytest.CaptureFixture[str],
) -> None:
    child = ChildProcess(
        ChildSpec(
            "broken",
            (
                sys.executable,
                "-c",
                "import sys; print('cannot start: no config', file=sys.stderr); sys.exit(2)",
            ),
            READY,
        ),
        Console(),
    )
    with pytest.raises(ChildExitedError) as caught:
        await child.launch(10)
    assert (
        str(caught.value)
        == "broken stopped before it was ready (exit code 2): cannot start: no config"
    )
    assert "[broken] cannot start: no config" in capsys.readouterr().err


async def test_a_child_that_never_gets_ready_is_killed_after_the_timeout() -> None:
    child = ChildProcess(
        ChildSpec("silent", (sys.executable, "-c", "import time; time.sleep(60)"), READY), Console()
    )
    with pytest.raises(ChildExitedError, match="silent was not ready within 1s"):
        await child.launch(1)
    assert child.pid is not None and not alive(child.pid)


async def test_a_dead_child_is_restarted_and_forwards_its_output(
    capsys: pytest.CaptureFixture[str],
) -> None:
    child = python_child("worker", "time.sleep(60)")
    first = await child.launch(10)
    assert int(first.group(1)) == child.pid
    supervisor = Supervisor(Console(), FAST, launch_timeout_s=10)
    supervisor.watch(child)
    old_pid = child.pid
    assert old_pid is not None
    child.send(signal.SIGKILL)
    for _ in range(200):
        if child.pid != old_pid and child.ready_match is not None:
            break
        await asyncio.sleep(0.05)
    assert child.pid != old_pid and child.running
    await supervisor.stop_watching()
    await stop_in_order([[child]], 5, Console())
    assert not child.running and not supervisor.failed.done()
    captured = capsys.readouterr()
    assert f"[worker] ready {old_pid}" in captured.out
    assert f"[worker] ready {child.pid}" in captured.out
    assert "[up] worker is back" in captured.out
    assert "stopped unexpectedly (killed by SIGKILL); restarting it" in captured.err


async def test_the_supervisor_gives_up_on_a_child_that_keeps_crashing() -> None:
    child = python_child("crasher", "sys.exit(3)")
    await child.launch(10)
    supervisor = Supervisor(Console(), FAST, launch_timeout_s=10)
    supervisor.watch(child)
    reason = await asyncio.wait_for(supervisor.failed, 30)
    await supervisor.stop_watching()
    assert (
        reason == "crasher crashed 3 times in a row within 10s of starting (exit code 3); giving up"
    )


async def test_stop_in_order_kills_a_child_that_ignores_sigterm(
    capsys: pytest.CaptureFixture[str],
) -> None:
    stubborn = python_child(
        "stubborn", "signal.signal(signal.SIGTERM, signal.SIG_IGN); time.sleep(60)"
    )
    polite = python_child("polite", "time.sleep(60)")
    await stubborn.launch(10)
    await polite.launch(10)
    await stop_in_order([[stubborn], [polite]], 0.5, Console())
    assert not stubborn.running and not polite.running
    assert "[up] stubborn did not stop within 0.5s; killing it" in capsys.readouterr().err
