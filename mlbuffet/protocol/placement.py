"""Placement messages: asking the pool to load a model that no modelhost holds.

A request for a model that no host has loaded meets "no responders" on
`mlbuffet.infer.<model>`. The caller then sends an empty request on
`mlbuffet.place.<model>` (queue group `modelhost`): one host with room, or
that makes room by evicting its least recently used models, loads the
model's default version, subscribes to its inference subjects and only then
answers with a PlaceReply; the caller sends its inference request again.
A model that cannot be loaded is answered with an error reply (404 no such
model, 503 not serving, 507 larger than the host's memory budget).
docs/protocol.md documents the exchange.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from mlbuffet.protocol.fields import check_type, required_field


@dataclass(frozen=True, slots=True)
class PlaceReply:
    """A host has the model loaded and subscribed: inference requests reach it now."""

    TYPE = "mlbuffet.place_reply.v1"

    model: str
    version: int
    """The default version it loaded."""
    node: str
    loaded: bool
    """False when the host already held the model (another caller's request placed it)."""

    def to_dict(self) -> dict[str, Any]:
        return {
            "type": self.TYPE,
            "model": self.model,
            "version": self.version,
            "node": self.node,
            "loaded": self.loaded,
        }

    @classmethod
    def from_dict(cls, raw: Mapping[str, Any]) -> PlaceReply:
        check_type(raw, cls.TYPE)
        what = "place reply"
        return cls(
            model=required_field(raw, "model", str, what),
            version=required_field(raw, "version", int, what),
            node=required_field(raw, "node", str, what),
            loaded=required_field(raw, "loaded", bool, what),
        )
