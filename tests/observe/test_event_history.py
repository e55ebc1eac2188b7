"""The kept history of the mesh's events: the bounded stream, the history route, the replay."""

from __future__ import annotations

import asyncio

import pytest
from nats.js import JetStreamContext

from mlbuffet.mesh.events import publish_model_event
from mlbuffet.observe.event_history import (
    EVENTS_MAX_MSGS,
    EventReplay,
    Since,
    open_event_history,
    recent_events,
)
from mlbuffet.protocol import subjects
from mlbuffet.protocol.events import ModelEventKind
from tests.conftest import eventually
from tests.gateway.conftest import upload_file
from tests.observe.conftest import INTERVAL_S


async def test_the_stream_is_bounded_and_opening_it_again_changes_nothing(nc):
    js = nc.jetstream()
    assert await open_event_history(js, None) is True
    assert await open_event_history(js, None) is False
    info = await js.stream_info(subjects.EVENTS_STREAM)
    assert info.config.max_msgs == EVENTS_MAX_MSGS
    assert info.config.max_age and info.config.max_age > 0
    assert sorted(info.config.subjects or []) == sorted(subjects.kept_events())
    # The training stream keeps the third kind; both open side by side (no subject overlap).
    assert subjects.train_events("*") not in (info.config.subjects or [])


async def test_the_history_route_lists_events_from_before_the_request(
    make_gateway, model_files, start_modelhost, start_metrics
):
    gateway = await make_gateway(heartbeat_interval_s=INTERVAL_S)
    host = await start_modelhost(heartbeat_interval_s=INTERVAL_S)
    await start_metrics()
    await upload_file(gateway, "adder", model_files.add_one)
    events: list[dict] = []

    async def listed() -> bool:
        response = await gateway.get("/api/v1/events/history?limit=20")
        assert response.status == 200, await response.text()
        events[:] = (await response.json())["events"]
        kinds = {(e["kind"], e.get("event"), e.get("node")) for e in events}
        return ("model", "loaded", host.node_id) in kinds and ("node", "up", host.node_id) in kinds

    await eventually(listed)
    assert [e["at"] for e in events] == sorted(e["at"] for e in events)
    uploaded = [e for e in events if e["kind"] == "model" and e["event"] == "uploaded"]
    assert uploaded and uploaded[0]["model"] == "adder" and uploaded[0]["version"] == 1
    assert all(e["stream"] == subjects.EVENTS_STREAM and e["seq"] >= 1 for e in events)

    response = await gateway.get("/api/v1/events/history?limit=1")
    [last] = (await response.json())["events"]
    assert last["seq"] == max(e["seq"] for e in events if e["stream"] == subjects.EVENTS_STREAM)


@pytest.mark.parametrize(
    "limit", ["0", "-1", "abc", "100000", "\u0661"]
)  # an Arabic-Indic digit one
async def test_a_bad_history_limit_is_a_400(gateway, limit):
    response = await gateway.get("/api/v1/events/history", params={"limit": limit})
    assert response.status == 400
    assert "limit" in (await response.json())["http_status"]["description"]


async def uploads_kept(nc, count: int) -> JetStreamContext:
    """The stream, holding `count` events: model m's versions 1 to `count` uploaded."""
    js = nc.jetstream()
    await open_event_history(js, None)
    for version in range(1, count + 1):
        await publish_model_event(nc, "node-a", ModelEventKind.UPLOADED, "m", version)
    await nc.flush()

    async def all_kept() -> bool:
        return (await js.stream_info(subjects.EVENTS_STREAM)).state.messages == count

    await eventually(all_kept)
    return js


async def test_recent_events_keep_only_the_last_ones_in_order(nc):
    js = await uploads_kept(nc, 7)
    kept = await recent_events(js, 3)
    assert [e.data["version"] for e in kept] == [5, 6, 7]
    assert [e.seq for e in kept] == [5, 6, 7]


async def test_a_replay_from_a_sequence_then_follows_live_events(nc):
    js = await uploads_kept(nc, 4)
    replay = EventReplay(js, Since.parse("3"))
    seen: list[int] = []

    async def read() -> None:
        async for event in replay:
            seen.append(event.data["version"])
            if len(seen) == 3:
                return

    reading = asyncio.create_task(read())
    await eventually(lambda: len(seen) == 2)
    await publish_model_event(nc, "node-a", ModelEventKind.UPLOADED, "m", 5)
    await asyncio.wait_for(reading, 10)
    assert seen == [3, 4, 5]


def test_since_reads_sequences_and_durations():
    assert Since.parse("120").seq == 120
    assert Since.parse("15m").time is not None
    for bad in ("", "m", "-5m", "5w", "1.5", "x"):
        with pytest.raises(ValueError, match="sequence number"):
            Since.parse(bad)
