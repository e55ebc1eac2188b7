"""Asking the mesh how it is: the cluster status and its recent series, for the gateway and the CLI."""

from __future__ import annotations

from nats.aio.client import Client

from mlbuffet.mesh.request import request_once
from mlbuffet.protocol import subjects
from mlbuffet.protocol.cluster import ClusterSeries, ClusterStatus, SeriesRequest
from mlbuffet.protocol.errors import DeadlineExceededError, ServiceUnavailableError
from mlbuffet.protocol.wire import pack, unpack

CLUSTER_TIMEOUT_S = 3.0


async def _ask_metrics(
    nc: Client, subject: str, payload: bytes, timeout_s: float, who: str
) -> bytes:
    """A request to a metrics actor; 503 if none runs, 504 if none answers in time."""
    return await request_once(
        nc,
        subject,
        payload,
        timeout_s,
        who=who,
        no_responders=ServiceUnavailableError(
            "no metrics actor is running: start one (`mlbuffet metrics`; `mlbuffet up` does)"
        ),
        timed_out=DeadlineExceededError("the metrics actor did not answer in time"),
    )


async def cluster_status(
    nc: Client, timeout_s: float = CLUSTER_TIMEOUT_S, who: str = "this process"
) -> ClusterStatus:
    """Ask a metrics actor for the cluster view."""
    data = await _ask_metrics(nc, subjects.cluster_status(), b"", timeout_s, who)
    return unpack(data, ClusterStatus.from_dict)


async def cluster_series(
    nc: Client, since: float = 0.0, timeout_s: float = CLUSTER_TIMEOUT_S, who: str = "this process"
) -> ClusterSeries:
    """Ask a metrics actor for its samples of the last minutes (those after `since` only)."""
    payload = pack(SeriesRequest(since))
    data = await _ask_metrics(nc, subjects.cluster_series(), payload, timeout_s, who)
    return unpack(data, ClusterSeries.from_dict)
