"""The gateway's side of training: the job store, opened on the mesh's NATS connection.

The gateway never runs a job: it uploads a job's files to the Object Store,
submits the job to a trainer over NATS, and reads records and logs from
JetStream (see mlbuffet/training).
"""

from __future__ import annotations

from collections.abc import AsyncIterator

from aiohttp import web

from gateway.service import MESH
from mlbuffet.training import JobStore

JOBS = web.AppKey("jobs", JobStore)


async def training_context(app: web.Application) -> AsyncIterator[None]:
    """aiohttp cleanup context, after mesh_context: open the training buckets once."""
    mesh = app[MESH]
    app[JOBS] = await JobStore.open(mesh.nc.jetstream(), replicas=mesh.config.registry_replicas)
    yield


def jobs_of(request: web.Request) -> JobStore:
    return request.app[JOBS]
