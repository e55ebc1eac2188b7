"""Submitting a training job over NATS, as the gateway and any client do.

The input files go to the Object Store first, under the job's id (chosen
here); then one trainer, in queue group `trainer`, accepts the job and
queues it in the jobs KV bucket. If no trainer answers, the files are
removed again and nothing is left behind.
"""

from __future__ import annotations

import math
import secrets
from collections.abc import Mapping
from pathlib import Path

from nats.aio.client import Client

from mlbuffet.mesh.errors import from_nats
from mlbuffet.mesh.request import request_once
from mlbuffet.protocol import subjects
from mlbuffet.protocol.errors import (
    BadRequestError,
    DeadlineExceededError,
    ServiceUnavailableError,
    UnprocessableError,
)
from mlbuffet.protocol.jobs import TrainAccepted, TrainJob
from mlbuffet.protocol.names import parse_file_name
from mlbuffet.protocol.wire import pack, unpack
from mlbuffet.training.store import JobStore

SUBMIT_TIMEOUT_S = 10.0


def checked_timeout(seconds: float | None) -> float | None:
    """A job's wall-clock limit as given (None: the trainer's default); finite and positive.

    An infinity is not "no limit": the trainer would refuse it after the files are uploaded.
    """
    if seconds is not None and not (math.isfinite(seconds) and seconds > 0):
        raise UnprocessableError(f"timeout must be a positive number of seconds, not {seconds!r}")
    return seconds


def new_job_id() -> str:
    """A random job id: 20 hex characters, one subject token."""
    return secrets.token_hex(10)


async def submit_job(
    nc: Client,
    store: JobStore,
    spec: TrainJob,
    files: Mapping[str, Path],
    timeout_s: float = SUBMIT_TIMEOUT_S,
    who: str = "this process",
) -> TrainAccepted:
    """Upload `files` (name -> local path, every name in spec.inputs) and submit `spec`.

    ServiceUnavailableError (503) if no trainer runs; every NATS failure is mapped
    (mlbuffet.mesh.errors), `who` naming the caller. The uploaded files are
    removed again unless a trainer accepted the job.
    """
    for name in spec.inputs:
        parse_file_name(name)
        if name not in files:
            raise BadRequestError(f"file {name!r} of the job is not given")
    accepted = False
    try:
        try:
            for name in spec.inputs:
                await store.put_input(spec.job, name, files[name])
        except Exception as exc:
            raise from_nats(exc, who) or exc from None
        data = await request_once(
            nc,
            subjects.train_submit(),
            pack(spec),
            timeout_s,
            who=who,
            no_responders=ServiceUnavailableError(
                "no trainer is running; start one with `mlbuffet trainer` (or `mlbuffet up`)"
            ),
            timed_out=DeadlineExceededError(f"no trainer answered within {timeout_s:.0f} s"),
        )
        reply = unpack(data, TrainAccepted.from_dict)
        accepted = True
        return reply
    finally:
        if not accepted:
            await store.delete_inputs(spec.job, spec.inputs)
