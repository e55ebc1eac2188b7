"""Asking the mesh how it is: the cluster status and its recent series, for the gateway and the CLI."""

from __future__ import annotations

import nats.errors
from nats.aio.client import Client

from mlbuffet.protocol import subjects
from mlbuffet.protocol.cluster import ClusterSeries, ClusterStatus, SeriesRequest
from mlbuffet.protocol.errors import DeadlineExceededError, ServiceUnavailableError
from mlbuffet.protocol.wire import pack, unpack

CLUSTER_TIMEOUT_S = 3.0


async def _ask_metrics(nc: Client, subject: str, payload: bytes, timeout_s: float) -> bytes:
    """A request to a metrics actor; 503 if none runs, 504 if none answers in time."""
    try:
        msg = await nc.request(subject, payload, timeout=timeout_s)
    except nats.errors.NoRespondersError:
        raise ServiceUnavailableError(
            "no metrics actor is running: start one (`mlbuffet metrics`; `mlbuffet up` does)"
        ) from None
    except nats.errors.TimeoutError:
        raise DeadlineExceededError("the metrics actor did not answer in time") from None
    except nats.errors.Error:
        raise ServiceUnavailableError("lost the NATS connection; retry") from None
    return bytes(msg.data)


async def cluster_status(nc: Client, timeout_s: float = CLUSTER_TIMEOUT_S) -> ClusterStatus:
    """Ask a metrics actor for the cluster view."""
    data = await _ask_metrics(nc, subjects.cluster_status(), b"", timeout_s)
    return unpack(data, ClusterStatus.from_dict)


async def cluster_series(
    nc: Client, since: float = 0.0, timeout_s: float = CLUSTER_TIMEOUT_S
) -> ClusterSeries:
    """Ask a metrics actor for its samples of the last minutes (those after `since` only)."""
    data = await _ask_metrics(nc, subjects.cluster_series(), pack(SeriesRequest(since)), timeout_s)
    return unpack(data, ClusterSeries.from_dict)
