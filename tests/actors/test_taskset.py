"""TaskSet: `spawn` waits for room, `offer` starts, queues a bounded backlog, or refuses at once."""

from __future__ import annotations

import asyncio

import pytest

from actors.base import TaskSet


def gate_work(gate: asyncio.Event, done: list[int]):
    async def work(n: int) -> None:
        await gate.wait()
        done.append(n)

    return work


async def test_offer_runs_up_to_the_limit_queues_the_backlog_and_refuses_the_rest():
    tasks = TaskSet(2, backlog=1)
    gate, done = asyncio.Event(), []
    made: list[int] = []

    work = gate_work(gate, done)

    def counted(n: int):
        made.append(n)
        return work(n)

    assert [tasks.offer(counted, n) for n in range(5)] == [True, True, True, False, False]
    assert (len(tasks), tasks.queued) == (2, 1)
    assert made == [0, 1]  # queued work is not even a coroutine yet; refused work never is
    gate.set()
    assert await tasks.wait(5)  # waits for the backlog too
    assert sorted(done) == [0, 1, 2] and made == [0, 1, 2]
    assert (len(tasks), tasks.queued) == (0, 0)


async def test_start_runs_past_the_limit_and_cancel_drops_the_backlog():
    tasks = TaskSet(1, backlog=2)
    gate, done = asyncio.Event(), []
    work = gate_work(gate, done)
    assert tasks.offer(work, 0)
    tasks.start(work(1))
    assert len(tasks) == 2
    assert tasks.offer(work, 2) and tasks.queued == 1
    await tasks.cancel()
    gate.set()
    await asyncio.sleep(0)
    assert done == [] and (len(tasks), tasks.queued) == (0, 0)


async def test_spawn_waits_for_room_and_a_cancelled_wait_leaves_no_stray_coroutine():
    tasks = TaskSet(1)
    gate, done = asyncio.Event(), []
    work = gate_work(gate, done)
    await tasks.spawn(work(0))
    waiting = asyncio.create_task(tasks.spawn(work(1)))
    cancelled = asyncio.create_task(tasks.spawn(work(2)))
    await asyncio.sleep(0.01)
    assert not waiting.done() and len(tasks) == 1
    cancelled.cancel()  # filterwarnings=error: a "never awaited" warning would fail the test
    with pytest.raises(asyncio.CancelledError):
        await cancelled
    gate.set()
    await waiting
    assert await tasks.wait(5)
    assert sorted(done) == [0, 1]


def test_a_taskset_needs_room_and_a_backlog_that_is_not_negative():
    with pytest.raises(ValueError, match="at least one"):
        TaskSet(0)
    with pytest.raises(ValueError, match="negative"):
        TaskSet(1, backlog=-1)
