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

import nats.errors
from nats.aio.client import Client

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
) -> TrainAccepted:
    """Upload `files` (name -> local path, every name in spec.inputs) and submit `spec`.

    ServiceUnavailableError (503) if no trainer runs; the uploaded files are
    removed again unless a trainer accepted the job.
    """
    for name in spec.inputs:
        parse_file_name(name)
        if name not in files:
            raise BadRequestError(f"file {name!r} of the job is not given")
    accepted = False
    try:
        for name in spec.inputs:
            await store.put_input(spec.job, name, files[name])
        try:
            msg = await nc.request(subjects.train_submit(), pack(spec), timeout=timeout_s)
        except nats.errors.NoRespondersError:
            raise ServiceUnavailableError(
                "no trainer is running; start one with `mlbuffet trainer` (or `mlbuffet up`)"
            ) from None
        except nats.errors.TimeoutError:
            raise DeadlineExceededError(f"no trainer answered within {timeout_s:.0f} s") from None
        reply = unpack(msg.data, TrainAccepted.from_dict)
        accepted = True
        return reply
    finally:
        if not accepted:
            await store.delete_inputs(spec.job, spec.inputs)
