"""Modelhosts following the registry: pinned versions, default switches, deletes, --models."""

from __future__ import annotations

import asyncio
import time

import nats.errors
import pytest

from mlbuffet.mesh.connection import flush_subscriptions
from mlbuffet.protocol import subjects
from mlbuffet.protocol.errors import MLBuffetError, ModelNotFoundError
from mlbuffet.protocol.events import ModelEvent
from mlbuffet.protocol.wire import unpack
from tests.actors.conftest import added, adder_input, infer
from tests.conftest import eventually


async def test_pinned_versions_answer_on_their_own_subjects(
    nc, registry, upload, start_modelhost, model_files
):
    await upload("adder", model_files.add_one)
    await upload("adder", model_files.add_two)
    await upload("adder", model_files.add_ten)
    await start_modelhost()
    assert added(await infer(nc, "adder", adder_input())) == 10.0
    for version, constant in ((1, 1.0), (2, 2.0), (3, 10.0)):
        response = await infer(nc, "adder", adder_input(2), version=version)
        assert (response.version, added(response)) == (version, constant)


async def test_a_pinned_version_is_loaded_on_demand_and_the_loaded_ones_are_bounded(
    nc, upload, start_modelhost, model_files
):
    for path in (model_files.add_one, model_files.add_two, model_files.add_ten):
        await upload("adder", path)
    host = await start_modelhost(pinned_versions=1)
    served = host.served["adder"]
    assert list(served.pinned) == []
    await infer(nc, "adder", adder_input(), version=1)
    assert list(served.pinned) == [1]
    await infer(nc, "adder", adder_input(), version=2)
    assert list(served.pinned) == [2]
    assert added(await infer(nc, "adder", adder_input(), version=1)) == 1.0
    assert list(served.pinned) == [1]


async def test_concurrent_asks_for_one_pinned_version_load_it_once(
    nc, upload, start_modelhost, model_files
):
    await upload("adder", model_files.add_one)
    await upload("adder", model_files.add_two)
    host = await start_modelhost()
    answers = await asyncio.gather(
        *(infer(nc, "adder", adder_input(), version=1) for _ in range(16))
    )
    assert {added(a) for a in answers} == {1.0}
    assert list(host.served["adder"].pinned) == [1]


async def test_an_unknown_pinned_version_is_not_found(nc, upload, start_modelhost, model_files):
    await upload("adder", model_files.add_one)
    await start_modelhost()
    with pytest.raises(ModelNotFoundError, match="no version 4; versions: 1"):
        await infer(nc, "adder", adder_input(), version=4)


async def test_a_default_switch_under_load_fails_no_request(
    nc, registry, upload, start_modelhost, model_files
):
    await upload("adder", model_files.add_one)
    hosts = [await start_modelhost(), await start_modelhost()]
    answers: list[tuple[float, float]] = []  # (time the request was sent, constant added)
    failures: list[BaseException] = []
    switched = asyncio.Event()

    async def client() -> None:
        for _ in range(400):  # bounded; stops early once the switch is complete
            sent = time.monotonic()
            try:
                response = await infer(nc, "adder", adder_input(), timeout=2)
                answers.append((sent, added(response)))
            except (MLBuffetError, nats.errors.Error) as exc:
                failures.append(exc)
            if switched.is_set():
                return

    clients = [asyncio.create_task(client()) for _ in range(8)]
    await eventually(lambda: len(answers) >= 40)
    assert await upload("adder", model_files.add_two) == 2
    await eventually(lambda: all(h.served["adder"].default.version == 2 for h in hosts))
    switch_done = time.monotonic()
    await eventually(lambda: sum(t > switch_done for t, _ in answers) >= 40)
    switched.set()
    await asyncio.gather(*clients)

    assert failures == []
    assert {c for _, c in answers} == {1.0, 2.0}
    assert {c for t, c in answers if t > switch_done} == {2.0}


async def test_a_set_default_reaches_every_host(nc, registry, upload, start_modelhost, model_files):
    await upload("adder", model_files.add_one)
    await upload("adder", model_files.add_two)
    hosts = [await start_modelhost(), await start_modelhost()]
    await registry.set_default("adder", 1)
    await eventually(lambda: all(h.served["adder"].default.version == 1 for h in hosts))
    answers = await asyncio.gather(*(infer(nc, "adder", adder_input()) for _ in range(20)))
    assert {added(a) for a in answers} == {1.0}


async def test_deleting_a_model_unsubscribes_every_host_and_says_unloaded(
    nc, registry, upload, start_modelhost, model_files
):
    await upload("adder", model_files.add_one)
    await upload("other", model_files.add_two)
    hosts = [await start_modelhost(), await start_modelhost()]
    events = await nc.subscribe(subjects.model_events("adder"))
    await flush_subscriptions(nc)
    await infer(nc, "adder", adder_input())

    await registry.delete_model("adder")
    unloaded: set[str] = set()
    while len(unloaded) < 2:
        event = unpack((await events.next_msg(timeout=5)).data, ModelEvent.from_dict)
        if event.event == ModelEvent.UNLOADED:
            assert event.model == "adder"
            unloaded.add(event.node)
    await events.unsubscribe()

    assert unloaded == {h.node_id for h in hosts}
    assert all("adder" not in h.served for h in hosts)
    with pytest.raises(nats.errors.NoRespondersError):
        await infer(nc, "adder", adder_input())
    with pytest.raises(nats.errors.NoRespondersError):
        await infer(nc, "adder", adder_input(), version=1)
    assert added(await infer(nc, "other", adder_input())) == 2.0


async def test_a_new_upload_is_served_without_a_restart_and_announced_loaded(
    nc, upload, start_modelhost, model_files
):
    host = await start_modelhost()
    events = await nc.subscribe(subjects.model_events("adder"))
    await flush_subscriptions(nc)
    await upload("adder", model_files.add_ten)
    event = unpack((await events.next_msg(timeout=5)).data, ModelEvent.from_dict)
    while event.event != ModelEvent.LOADED:
        event = unpack((await events.next_msg(timeout=5)).data, ModelEvent.from_dict)
    assert (event.model, event.version, event.node) == ("adder", 1, host.node_id)
    await events.unsubscribe()
    assert added(await infer(nc, "adder", adder_input())) == 10.0


async def test_a_host_with_models_serves_only_those(nc, upload, start_modelhost, model_files):
    await upload("adder", model_files.add_one)
    await upload("other", model_files.add_two)
    host = await start_modelhost(models=("adder", "later"))
    assert set(host.served) == {"adder"}
    assert added(await infer(nc, "adder", adder_input())) == 1.0
    with pytest.raises(nats.errors.NoRespondersError):
        await infer(nc, "other", adder_input())
    await upload("later", model_files.add_ten)
    await upload("ignored", model_files.add_ten)
    await eventually(lambda: "later" in host.served)
    assert added(await infer(nc, "later", adder_input())) == 10.0
    assert "ignored" not in host.served
