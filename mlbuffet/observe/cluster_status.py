"""Asking the mesh how it is: the cluster status, for the gateway and the CLI alike."""

from __future__ import annotations

from nats.aio.client import Client

from mlbuffet.mesh.request import request_once
from mlbuffet.protocol import subjects
from mlbuffet.protocol.cluster import ClusterStatus
from mlbuffet.protocol.errors import DeadlineExceededError, ServiceUnavailableError
from mlbuffet.protocol.wire import unpack

CLUSTER_TIMEOUT_S = 3.0


async def cluster_status(
    nc: Client, timeout_s: float = CLUSTER_TIMEOUT_S, who: str = "this process"
) -> ClusterStatus:
    """Ask a metrics actor for the cluster view; 503 if none runs, 504 if none answers in time."""
    data = await request_once(
        nc,
        subjects.cluster_status(),
        b"",
        timeout_s,
        who=who,
        no_responders=ServiceUnavailableError(
            "no metrics actor is running: start one (`mlbuffet metrics`; `mlbuffet up` does)"
        ),
        timed_out=DeadlineExceededError("the metrics actor did not answer in time"),
    )
    return unpack(data, ClusterStatus.from_dict)
