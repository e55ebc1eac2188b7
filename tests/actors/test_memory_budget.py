"""A modelhost within its memory budget: measured costs, LRU eviction, loading on first request.

Real nats-server, real onnxruntime, real ONNX files whose weights cannot be
folded away (tests.onnx_models.lookup_table); requests go through
mlbuffet.Client, which asks the pool to place a model no host holds. No
figure below is assumed: what the host measured is read back from it, and
each expectation follows from those measurements.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path

import numpy as np
import pytest
from nats.aio.client import Client as NatsClient

from actors.modelhost.__main__ import parse_args as modelhost_args
from actors.modelhost.memory import MemoryBudget
from actors.modelhost.service import ModelhostService
from mlbuffet.client import Client
from mlbuffet.config import ConfigError
from mlbuffet.protocol import subjects
from mlbuffet.protocol.errors import ModelTooLargeError
from mlbuffet.protocol.events import ModelEvent
from mlbuffet.protocol.records import ModelSettings
from mlbuffet.protocol.wire import unpack
from mlbuffet.roles.memory import default_memory_budget
from tests.conftest import eventually
from tests.onnx_models import lookup_table

MIB = 2**20
TABLE_MIB = 4
ONE_SESSION = ModelSettings(sessions=1)
"""One session per model keeps each cost near its weights; the budgets below count on
the floor (file size x sessions) only where they must."""


@pytest.fixture
def tables(tmp_path: Path) -> list[Path]:
    """Eight 4 MiB lookup tables; row r of table k answers r + 1000 k."""
    return [lookup_table(tmp_path / f"t{k}.onnx", TABLE_MIB, 1000.0 * k) for k in range(8)]


@pytest.fixture
async def client(nc: NatsClient) -> AsyncIterator[Client]:
    yield Client(nc, timeout=30.0)


@pytest.fixture
async def events(nc: NatsClient) -> AsyncIterator[list[ModelEvent]]:
    """Every model event published while the test runs."""
    seen: list[ModelEvent] = []

    async def keep(msg) -> None:
        seen.append(unpack(msg.data, ModelEvent.from_dict))

    sub = await nc.subscribe(subjects.model_events("*"), cb=keep)
    yield seen
    await sub.unsubscribe()


async def add_tables(upload, registry, tables: list[Path], settings=ONE_SESSION) -> list[str]:
    names = [f"t{k}" for k in range(len(tables))]
    for name, path in zip(names, tables, strict=True):
        await upload(name, path)
        await registry.set_settings(name, settings)
    return names


async def lookup(client: Client, name: str, row: int) -> tuple[float, str]:
    """The answer of table `name` for `row`, checked against what the table holds."""
    result = await client.infer(name, {"i": np.array([row], np.int64)})
    offset = 1000.0 * int(name[1:])
    assert result["y"].tolist() == [[row + offset] * 4], (name, row)
    return float(result["y"][0][0]), result.node


def within_budget(host: ModelhostService) -> bool:
    return host.models.used() <= host.models.memory.budget


async def test_a_host_keeps_within_its_budget_and_loads_the_rest_on_first_request(
    nc, upload, registry, start_modelhost, tables, client, events
):
    names = await add_tables(upload, registry, tables)
    # Eight tables of at least 4 MiB each (the floor) cannot fit in 20 MiB: some must wait.
    host = await start_modelhost(memory_budget=20 * MIB)
    held = set(host.served)
    assert 0 < len(held) < len(names) and within_budget(host)

    for sweep in range(2):
        for row, name in enumerate(names):
            await lookup(client, name, row + sweep)
            assert name in host.served and within_budget(host)

    costs = {name: host.models.memory.measured(name) for name in names}
    assert all(cost is not None and cost >= TABLE_MIB * MIB for cost in costs.values()), costs
    # Least recently used went first: what is held is the end of the sweep.
    held_now = [n for n in names if n in host.served]
    assert held_now == names[len(names) - len(held_now) :]
    assert sum(costs[n] for n in held_now) <= host.models.memory.budget
    evicted = [e for e in events if e.event == ModelEvent.EVICTED]
    assert len(evicted) == host.models.memory.evictions >= len(names) - len(held)
    reasons = [e.reason or "" for e in evicted]
    # Room is made before a load for what it will likely cost; a load that costs more is
    # followed by a trim: those are the only reasons.
    assert any(r.startswith("room for t") for r in reasons), reasons
    assert all(r.startswith(("room for t", "over the memory budget after a load")) for r in reasons)
    beat = host.heartbeat_load().counters
    assert beat["memory_used_bytes"] == host.models.used()
    assert beat["memory_budget_bytes"] == 20 * MIB and beat["evictions"] == len(evicted)


async def test_concurrent_first_requests_cause_one_load(
    nc, upload, registry, start_modelhost, tables, events
):
    await add_tables(upload, registry, tables[:1])
    host = await start_modelhost(memory_budget=64 * MIB)
    assert set(host.served) == {"t0"}
    # Room for t0 as measured and half of t1's weights: a registry change may not evict t0,
    # so t1 waits for a request.
    host.models.memory.budget = host.models.used() + tables[1].stat().st_size // 2
    await upload("t1", tables[1])
    await registry.set_settings("t1", ONE_SESSION)
    await host.settle()
    assert set(host.served) == {"t0"}

    callers = [Client(nc, timeout=30.0), Client(nc, timeout=30.0)]
    answers = await asyncio.gather(*(lookup(callers[i % 2], "t1", i) for i in range(24)))
    assert [a for a, _ in answers] == [1000.0 + i for i in range(24)]
    loads = [e for e in events if e.event == ModelEvent.LOADED and e.model == "t1"]
    assert len(loads) == 1, loads
    assert set(host.served) == {"t1"}
    (evicted,) = [e for e in events if e.event == ModelEvent.EVICTED]
    assert evicted.model == "t0" and "room for t1" in (evicted.reason or "")


async def test_models_asking_for_no_replica_are_evicted_before_older_ones(
    nc, upload, registry, start_modelhost, tables, client
):
    names = await add_tables(upload, registry, tables[:3])
    host = await start_modelhost(memory_budget=2 * MIB * TABLE_MIB * 3)
    await registry.set_settings("t1", ModelSettings(sessions=1, min_replicas=0))
    for name in names:
        await lookup(client, name, 0)
    need = max(host.models.memory.measured(n) or 0 for n in names)
    # Shrink the room to what two of them take: a fourth model must push one out.
    host.models.memory.budget = sum(host.models.cost(n) for n in names[:2]) + need // 2
    await lookup(client, "t0", 1)  # t0 is now the most recent, t1 the least but for t2
    await lookup(client, "t2", 1)
    await upload("t3", tables[3])
    await registry.set_settings("t3", ONE_SESSION)
    await lookup(client, "t3", 0)
    assert "t1" not in host.served, "the model asking for no replica should have gone first"
    assert within_budget(host)


async def test_a_model_larger_than_the_budget_is_refused_with_507_and_nothing_breaks(
    nc, upload, registry, start_modelhost, tmp_path, tables, client, events
):
    await add_tables(upload, registry, tables[:1])
    host = await start_modelhost(memory_budget=12 * MIB, workers=2)  # 2 sessions by default
    await upload("huge", lookup_table(tmp_path / "huge.onnx", 16, 0.0))
    # A file that fits, in four sessions that do not (each holds every weight).
    await upload("wide", lookup_table(tmp_path / "wide.onnx", 4, 0.0))
    await registry.set_settings("wide", ModelSettings(sessions=4))
    await host.settle()
    for name, words in (
        (
            "huge",
            "at least 32.0 MiB of memory loaded (its 16.0 MiB file in each of its 2 sessions)",
        ),
        ("wide", "at least 16.0 MiB of memory loaded (its 4.0 MiB file in each of its 4 sessions)"),
    ):
        with pytest.raises(ModelTooLargeError) as refused:
            await client.infer(name, {"i": np.array([0], np.int64)})
        assert refused.value.status == 507
        message = refused.value.message
        assert f"model {name!r}" in message and words in message, message
        assert "budget of 12.0 MiB" in message, message
        assert name not in host.served
    refusals = {e.model for e in events if e.event == ModelEvent.REFUSED}
    assert refusals == {"huge", "wide"}
    assert (await lookup(client, "t0", 3))[0] == 3.0 and within_budget(host)


async def test_moving_the_replica_settings_reloads_nothing(
    nc, upload, registry, start_modelhost, tables, client, events
):
    await add_tables(upload, registry, tables[:1])
    host = await start_modelhost()
    runtime = host.served["t0"].default
    await asyncio.sleep(0.2)  # the loaded event of the start has arrived
    events.clear()
    await registry.set_settings("t0", ModelSettings(sessions=1, min_replicas=0, max_replicas=3))
    await eventually(lambda: host.view.records["t0"].settings.min_replicas == 0)
    await host.settle()
    assert host.served["t0"].default is runtime
    assert not [e for e in events if e.event == ModelEvent.LOADED]
    await lookup(client, "t0", 2)


def test_evictions_are_chosen_surplus_first_then_least_recently_used():
    budget = MemoryBudget(100)
    for name in ("a", "b", "c", "d"):
        budget.loaded(name, 25, 10)
    # Loaded for requests and not used yet: kept, whatever their place in the order.
    for name in ("a", "b", "c", "d"):
        budget.keep_fresh(name)
    assert (
        budget.choose_evictions("e", 25, dict.fromkeys("abcd", 25), surplus=bool, force=True)
        is None
    )
    for name in ("b", "c", "d", "a"):
        budget.touch(name)  # used: order now b, c, d, a
    costs = dict.fromkeys("abcd", 25)
    spare = {"d"}.__contains__
    assert budget.choose_evictions("e", 25, costs, surplus=spare, force=False) == ["d"]
    assert budget.choose_evictions("e", 50, costs, surplus=spare, force=False) is None
    assert budget.choose_evictions("e", 50, costs, surplus=spare, force=True) == ["d", "b"]
    assert budget.choose_evictions("e", 10, costs, surplus=spare, force=True, reserved=0) == ["d"]
    assert (
        budget.choose_evictions("e", 0, dict.fromkeys("ab", 25), surplus=spare, force=False) == []
    )
    with pytest.raises(ModelTooLargeError, match="100 bytes"):
        budget.check_measured("e", 101)
    with pytest.raises(ModelTooLargeError, match=r"at least 102 B .* 2 sessions"):
        budget.check_floor("e", 51, 2)
    # A model never loaded here is foreseen from its floor as the others came out.
    assert budget.predict("e", 8) == 20 and budget.predict("a", 8) == 25


def test_the_budget_flag_reads_sizes_and_has_a_bounded_default():
    config, _ = modelhost_args(["--memory-budget", "256MiB"], {})
    assert config.memory_budget == 256 * MIB
    config, _ = modelhost_args([], {"MLBUFFET_MEMORY_BUDGET": "2GiB"})
    assert config.memory_budget == 2 * 2**30
    config, _ = modelhost_args([], {})
    assert config.memory_budget == default_memory_budget() > 0
    for bad, words in (("lots", "is not a size"), ("0", "must be above 0")):
        with pytest.raises(ConfigError, match=words):
            modelhost_args(["--memory-budget", bad], {})
