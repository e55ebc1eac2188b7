"""The events of models and nodes, published on mlbuffet.events.model.<model> and
mlbuffet.events.node.<node> for monitoring tools and the CLI's `mlbuffet events`."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from enum import Enum
from typing import Any

from mlbuffet.protocol.fields import check_type, enum_field, optional_field, required_field


class ModelEventKind(str, Enum):
    """What happened to a model; the values are the wire's `event` field."""

    UPLOADED = "uploaded"
    DEFAULT_CHANGED = "default-changed"
    DESCRIPTION_CHANGED = "description-changed"
    SETTINGS_CHANGED = "settings-changed"
    DELETED = "deleted"
    LOADED = "loaded"
    """A modelhost serves it now."""
    UNLOADED = "unloaded"
    EVICTED = "evicted"
    """A modelhost gave the model up to stay within its memory budget (`reason` says why)."""
    REFUSED = "refused"
    """A modelhost could not hold the model: larger than its whole memory budget."""


class NodeEventKind(str, Enum):
    """What the metrics actor saw of a node; the values are the wire's `event` field."""

    UP = "up"
    DOWN = "down"


@dataclass(frozen=True, slots=True)
class ModelEvent:
    """Subject mlbuffet.events.model.<model>: what happened to a model, and where."""

    TYPE = "mlbuffet.model_event.v1"

    # The kinds under the message's own name too, as publishers have always spelled them.
    UPLOADED = ModelEventKind.UPLOADED
    DEFAULT_CHANGED = ModelEventKind.DEFAULT_CHANGED
    DESCRIPTION_CHANGED = ModelEventKind.DESCRIPTION_CHANGED
    SETTINGS_CHANGED = ModelEventKind.SETTINGS_CHANGED
    DELETED = ModelEventKind.DELETED
    LOADED = ModelEventKind.LOADED
    UNLOADED = ModelEventKind.UNLOADED
    EVICTED = ModelEventKind.EVICTED
    REFUSED = ModelEventKind.REFUSED

    event: ModelEventKind
    model: str
    version: int | None
    node: str
    at: float
    """Unix time in seconds."""
    reason: str | None = None
    """Why, in words, for the events that have one (evicted, refused, loaded for a request)."""

    def to_dict(self) -> dict[str, Any]:
        document = {
            "type": self.TYPE,
            "event": ModelEventKind(self.event).value,
            "model": self.model,
            "version": self.version,
            "node": self.node,
            "at": self.at,
        }
        if self.reason is not None:
            document["reason"] = self.reason
        return document

    @classmethod
    def from_dict(cls, raw: Mapping[str, Any]) -> ModelEvent:
        check_type(raw, cls.TYPE)
        what = "model event"
        return cls(
            event=enum_field(raw, "event", ModelEventKind, what, "model event"),
            model=required_field(raw, "model", str, what),
            version=optional_field(raw, "version", int, what),
            node=required_field(raw, "node", str, what),
            at=float(required_field(raw, "at", (int, float), what)),
            reason=optional_field(raw, "reason", str, what),
        )


@dataclass(frozen=True, slots=True)
class NodeEvent:
    """Subject mlbuffet.events.node.<node>: the metrics actor saw a node come up or go down."""

    TYPE = "mlbuffet.node_event.v1"

    UP = NodeEventKind.UP
    DOWN = NodeEventKind.DOWN

    event: NodeEventKind
    node: str
    role: str
    at: float
    """Unix time in seconds."""
    last_seen: float
    """Unix time of the node's last heartbeat."""

    def to_dict(self) -> dict[str, Any]:
        return {
            "type": self.TYPE,
            "event": NodeEventKind(self.event).value,
            "node": self.node,
            "role": self.role,
            "at": self.at,
            "last_seen": self.last_seen,
        }

    @classmethod
    def from_dict(cls, raw: Mapping[str, Any]) -> NodeEvent:
        check_type(raw, cls.TYPE)
        what = "node event"
        return cls(
            event=enum_field(raw, "event", NodeEventKind, what, "node event"),
            node=required_field(raw, "node", str, what),
            role=required_field(raw, "role", str, what),
            at=float(required_field(raw, "at", (int, float), what)),
            last_seen=float(required_field(raw, "last_seen", (int, float), what)),
        )
