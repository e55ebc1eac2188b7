"""The Python client for programs that talk to the mesh over NATS (docs/client.md)."""

from mlbuffet.client.client import Client
from mlbuffet.client.events import Event, EventStream, OtherEvent
from mlbuffet.client.results import Deleted, InferResult, Uploaded
from mlbuffet.client.sync import SyncClient
from mlbuffet.mesh.hedging import HedgeConfig

__all__ = [
    "Client",
    "Deleted",
    "Event",
    "EventStream",
    "HedgeConfig",
    "InferResult",
    "OtherEvent",
    "SyncClient",
    "Uploaded",
]
