"""Asking the mesh how it is: the cluster status, for the gateway and the CLI alike."""

from __future__ import annotations

import nats.errors
from nats.aio.client import Client

from mlbuffet.protocol import subjects
from mlbuffet.protocol.cluster import ClusterStatus
from mlbuffet.protocol.errors import DeadlineExceededError, ServiceUnavailableError
from mlbuffet.protocol.wire import unpack

CLUSTER_TIMEOUT_S = 3.0


async def cluster_status(nc: Client, timeout_s: float = CLUSTER_TIMEOUT_S) -> ClusterStatus:
    """Ask a metrics actor for the cluster view; 503 if none runs, 504 if none answers in time."""
    try:
        msg = await nc.request(subjects.cluster_status(), b"", timeout=timeout_s)
    except nats.errors.NoRespondersError:
        raise ServiceUnavailableError(
            "no metrics actor is running: start one (`mlbuffet metrics`; `mlbuffet up` does)"
        ) from None
    except nats.errors.TimeoutError:
        raise DeadlineExceededError("the metrics actor did not answer in time") from None
    except nats.errors.Error:
        raise ServiceUnavailableError("lost the NATS connection; retry") from None
    return unpack(msg.data, ClusterStatus.from_dict)
