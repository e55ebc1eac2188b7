"""Event kinds are enums, and the wire still carries the strings docs/protocol.md lists."""

from __future__ import annotations

import msgpack
import pytest

from mlbuffet.protocol.errors import BadRequestError
from mlbuffet.protocol.events import ModelEvent, ModelEventKind, NodeEvent, NodeEventKind
from mlbuffet.protocol.jobs import JobEvent, JobEventKind
from mlbuffet.protocol.wire import pack, unpack

WIRE_MODEL_EVENTS = {
    "uploaded",
    "default-changed",
    "description-changed",
    "settings-changed",
    "deleted",
    "loaded",
    "unloaded",
    "evicted",
    "refused",
}


def test_the_kinds_are_the_strings_the_wire_has_always_carried():
    assert {kind.value for kind in ModelEventKind} == WIRE_MODEL_EVENTS
    assert {kind.value for kind in NodeEventKind} == {"up", "down"}
    assert {kind.value for kind in JobEventKind} == {"state", "log"}


@pytest.mark.parametrize("kind", list(ModelEventKind))
def test_a_model_event_carries_its_kind_as_a_plain_string(kind):
    raw = msgpack.unpackb(pack(ModelEvent(kind, "iris", 1, "gateway-x", 1.0)))
    assert raw["event"] == kind.value and type(raw["event"]) is str
    assert (
        unpack(pack(ModelEvent(kind, "iris", 1, "gateway-x", 1.0)), ModelEvent.from_dict).event
        is kind
    )


def test_a_kind_given_as_its_string_is_sent_the_same():
    assert pack(ModelEvent("loaded", "m", 1, "n", 1.0)) == pack(
        ModelEvent(ModelEventKind.LOADED, "m", 1, "n", 1.0)
    )


@pytest.mark.parametrize(
    ("message", "parse", "field", "called"),
    [
        (
            ModelEvent(ModelEventKind.DELETED, "m", None, "n", 1.0),
            ModelEvent.from_dict,
            "event",
            "model event",
        ),
        (
            NodeEvent(NodeEventKind.DOWN, "n", "modelhost", 2.0, 1.0),
            NodeEvent.from_dict,
            "event",
            "node event",
        ),
        (
            JobEvent(job="j", kind=JobEventKind.LOG, node="n", at=1.0),
            JobEvent.from_dict,
            "kind",
            "job event kind",
        ),
    ],
)
def test_an_unknown_kind_is_a_bad_request(message, parse, field, called):
    raw = message.to_dict() | {field: "exploded"}
    with pytest.raises(BadRequestError, match=f"unknown {called} 'exploded'"):
        unpack(msgpack.packb(raw), parse)
