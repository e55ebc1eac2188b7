"""Client.events: uploads, defaults and loads as they happen, and kinds it does not know."""

from __future__ import annotations

import asyncio
import time

import msgpack

from mlbuffet.client import OtherEvent
from mlbuffet.protocol.events import ModelEvent


async def collect(stream, until, timeout_s: float = 10.0) -> list:
    """Events of `stream` until one satisfies `until` (a bounded wait)."""
    seen = []
    deadline = time.monotonic() + timeout_s
    while not seen or not until(seen[-1]):
        seen.append(await stream.next(timeout=max(0.01, deadline - time.monotonic())))
    return seen


async def test_an_upload_and_its_load_arrive_as_model_events(client, start_modelhost, model_files):
    async with client.events() as events:
        uploaded = await client.upload("add", model_files.add_one)
        host = await start_modelhost()
        seen = await collect(events, lambda e: e.event == ModelEvent.LOADED)
    kinds = [(e.event, e.model, e.version) for e in seen]
    assert kinds[:2] == [
        (ModelEvent.UPLOADED, "add", uploaded.version),
        (ModelEvent.DEFAULT_CHANGED, "add", uploaded.version),
    ]
    assert seen[0].node == client.node_id
    assert seen[-1].node == host.node_id and seen[-1].version == 1


async def test_events_of_other_models_are_left_out_when_models_are_named(client, model_files):
    async with client.events(models=["wanted"]) as events:
        await client.upload("other", model_files.add_one)
        await client.upload("wanted", model_files.add_two)
        first = await events.next(timeout=5)
    assert (first.event, first.model) == (ModelEvent.UPLOADED, "wanted")


async def test_a_kind_of_event_the_client_does_not_know_is_an_other_event(client, nc):
    async with client.events() as events:
        await nc.publish(
            "mlbuffet.events.node.up",
            msgpack.packb({"type": "mlbuffet.node_event.v1", "node": "n1"}),
        )
        await nc.publish("mlbuffet.events.model.x", b"\xc1 not msgpack")
        await nc.publish(
            "mlbuffet.events.model.y", msgpack.packb({"type": ModelEvent.TYPE, "event": 1})
        )
        known, garbage, malformed = [await events.next(timeout=5) for _ in range(3)]
    assert isinstance(known, OtherEvent)
    assert known.subject == "mlbuffet.events.node.up" and known.type == "mlbuffet.node_event.v1"
    assert known.data["node"] == "n1"
    assert isinstance(garbage, OtherEvent) and garbage.type is None
    assert isinstance(malformed, OtherEvent) and malformed.data["event"] == 1


async def test_async_for_reads_events_without_async_with(client, model_files):
    stream = client.events()
    await stream.start()

    async def first():
        async for event in stream:
            return event

    reader = asyncio.create_task(first())
    await client.upload("add", model_files.add_one)
    event = await asyncio.wait_for(reader, 5)
    await stream.close()
    assert event.event == ModelEvent.UPLOADED
