"""A role's process ends once its main returns, whatever tasks it leaves behind.

On Python 3.11 asyncio.wait_for can swallow a cancellation that races its
inner future; nats-py's reconnect task (told to reconnect forever) then kept
retrying a dead server, and asyncio.Runner, which cancels once and waits
without bound, never returned: a modelhost outlived `mlbuffet up` for good.
"""

from __future__ import annotations

import asyncio
import subprocess
import sys
import textwrap
import time

from mlbuffet.roles.runner import SHUTDOWN_GRACE_S, run
from tests.modelhost_processes import REPO


async def retry_forever_swallowing(swallow: int, attempts: list[int]) -> None:
    """A reconnect loop that loses the first `swallow` cancellations, as the race does."""
    while True:
        try:
            await asyncio.sleep(0.05)
            attempts.append(1)
        except asyncio.CancelledError:
            if swallow == 0:
                raise
            swallow -= 1


def test_a_task_that_swallowed_a_cancellation_still_ends_with_the_process():
    attempts: list[int] = []

    async def main() -> str:
        left_running = asyncio.create_task(retry_forever_swallowing(2, attempts))
        await asyncio.sleep(0.2)
        assert not left_running.done()
        return "done"

    started = time.monotonic()
    assert run(main()) == "done"
    took = time.monotonic() - started
    print(f"\nended {took:.2f}s after start, the task retried {len(attempts)} times")
    assert attempts, "the task never ran: the test proves nothing"
    assert took < SHUTDOWN_GRACE_S


def test_a_task_that_never_ends_is_left_behind_and_the_process_exits():
    script = textwrap.dedent(
        """
        import asyncio
        from mlbuffet.roles.runner import run

        async def stubborn():
            while True:
                try:
                    await asyncio.sleep(0.05)
                except asyncio.CancelledError:
                    pass

        async def main():
            asyncio.create_task(stubborn())
            await asyncio.sleep(0.1)
            return 0

        run(main())
        print("unreachable: the process should have ended in run()")
        """
    )
    started = time.monotonic()
    done = subprocess.run(
        [sys.executable, "-c", script],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=SHUTDOWN_GRACE_S + 30,
    )
    took = time.monotonic() - started
    assert done.returncode == 1, done
    assert "unreachable" not in done.stdout
    assert "tasks still running" in done.stderr and "stubborn" in done.stderr, done.stderr
    assert took < SHUTDOWN_GRACE_S + 20
