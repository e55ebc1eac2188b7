"""Training jobs in JetStream: records in KV, input files and logs in an Object Store, events in a stream.

Every change to a job's record is a compare-and-set on its KV revision, so
the trainer running a job, a gateway cancelling it and a trainer expiring a
dead one's lease never overwrite each other. Each change is also published
as a JobEvent on `mlbuffet.events.train.<job>`, which the stream
TRAIN_EVENTS_STREAM keeps so that a late reader can replay a job's log.
"""

from __future__ import annotations

import asyncio
import io
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import nats.js.errors as js_errors
from nats.js import JetStreamContext
from nats.js.api import DiscardPolicy, StorageType, StreamConfig
from nats.js.kv import KeyValue
from nats.js.object_store import ObjectStore

from mlbuffet.protocol import subjects
from mlbuffet.protocol.errors import ConflictError, ModelNotFoundError
from mlbuffet.protocol.jobs import JobEvent, JobRecord, JobState
from mlbuffet.protocol.wire import pack, unpack
from mlbuffet.registry.buckets import StoreBuckets, bucket_keys, open_store_buckets, open_stream
from mlbuffet.registry.cas import CAS_ATTEMPTS, backoff, lost_race

log = logging.getLogger(__name__)

BUCKETS = StoreBuckets(
    records=subjects.TRAIN_JOBS_BUCKET,
    records_description="MLBuffet training jobs (one msgpack JobRecord per job)",
    history=4,
    files=subjects.TRAIN_FILES_BUCKET,
    files_description="MLBuffet training inputs and logs (<job>/input/<name>, <job>/log)",
)
EVENTS_MAX_AGE_S = 7 * 24 * 3600
"""How long the stream keeps a job's events (its final log stays in the Object Store)."""
EVENTS_MAX_BYTES = 256 * 1024 * 1024
LIST_LIMIT = 100


class JobNotFoundError(ModelNotFoundError):
    """No job with that id (404)."""


@dataclass(frozen=True, slots=True)
class JobEntry:
    record: JobRecord
    revision: int


Change = Callable[[JobRecord], JobRecord]


class JobStore:
    """Read, create and change training jobs; safe from many processes at once."""

    def __init__(self, js: JetStreamContext, kv: KeyValue, files: ObjectStore) -> None:
        self.js = js
        self.kv = kv
        self.files = files

    @classmethod
    async def open(cls, js: JetStreamContext, *, replicas: int | None = None) -> JobStore:
        """Open the jobs bucket, the files bucket and the events stream, creating what is missing."""
        kv, files, _ = await open_store_buckets(js, BUCKETS, replicas)
        await open_stream(
            js,
            StreamConfig(
                name=subjects.TRAIN_EVENTS_STREAM,
                description="MLBuffet training job events and log lines",
                subjects=[subjects.train_events("*")],
                max_age=EVENTS_MAX_AGE_S,
                max_bytes=EVENTS_MAX_BYTES,
                discard=DiscardPolicy.OLD,
                storage=StorageType.FILE,
            ),
            replicas,
        )
        return cls(js, kv, files)

    # -- records -------------------------------------------------------------

    async def entry(self, job: str) -> JobEntry | None:
        try:
            found = await self.kv.get(job)
        except js_errors.KeyNotFoundError:
            return None
        if not found.value or found.revision is None:
            return None
        return JobEntry(unpack(found.value, JobRecord.from_dict), found.revision)

    async def get(self, job: str) -> JobRecord:
        entry = await self.entry(job)
        if entry is None:
            raise JobNotFoundError(f"training job {job!r} not found")
        return entry.record

    async def list(self, limit: int = LIST_LIMIT) -> list[JobRecord]:
        """The most recently submitted jobs, newest first."""
        keys = await bucket_keys(self.kv)
        entries = await asyncio.gather(*(self._readable(k) for k in keys))
        records = [e.record for e in entries if e is not None]
        records.sort(key=lambda r: r.submitted_at, reverse=True)
        return records[:limit]

    async def _readable(self, job: str) -> JobEntry | None:
        try:
            return await self.entry(job)
        except Exception:
            log.warning("job record %r is unreadable", job, exc_info=True)
            return None

    async def create(self, record: JobRecord) -> JobEntry:
        """Store a new job; ConflictError if the id is taken."""
        try:
            revision = await self.kv.create(record.job, pack(record))
        except js_errors.KeyWrongLastSequenceError:
            raise ConflictError(f"a training job {record.job!r} exists already") from None
        except js_errors.APIError as exc:
            if exc.err_code == 10071:
                raise ConflictError(f"a training job {record.job!r} exists already") from None
            raise
        return JobEntry(record, revision)

    async def change(self, job: str, change: Change) -> JobEntry:
        """Apply `change` to the current record with compare-and-set, retrying on conflicts.

        `change` may raise to abort, or return its argument to leave the record as it is.
        """
        for attempt in range(CAS_ATTEMPTS):
            if attempt:
                await backoff(attempt)
            current = await self.entry(job)
            if current is None:
                raise JobNotFoundError(f"training job {job!r} not found")
            new = change(current.record)
            if new is current.record:
                return current
            new = new.with_changes(updated_at=time.time())
            try:
                revision = await self.kv.update(job, pack(new), last=current.revision)
            except js_errors.APIError as exc:
                if lost_race(exc):
                    continue
                raise
            return JobEntry(new, revision)
        raise ConflictError(f"training job {job!r} is being changed by others; try again")

    async def request_cancel(self, job: str, node: str) -> JobRecord:
        """Cancel a job: a queued one at once, a running one by asking its trainer.

        The trainer holding an active job watches its record and stops the job
        when `cancel_requested` appears; a job whose trainer's lease has run
        out is cancelled here, as nobody else would. ConflictError (409) if the
        job has finished.
        """
        now = time.time()

        def cancel(current: JobRecord) -> JobRecord:
            if current.state.finished:
                raise ConflictError(
                    f"training job {job!r} has already finished ({current.state.value})"
                )
            if current.state is JobState.QUEUED or (
                current.lease_until is not None and current.lease_until < now
            ):
                return current.with_changes(
                    state=JobState.CANCELLED,
                    finished_at=now,
                    cancel_requested=True,
                    reason="cancelled by request",
                )
            if current.cancel_requested:
                return current
            return current.with_changes(cancel_requested=True)

        entry = await self.change(job, cancel)
        if entry.record.state is JobState.CANCELLED:
            await self.publish_state(entry.record, node)
        return entry.record

    # -- events --------------------------------------------------------------

    async def publish(self, event: JobEvent) -> None:
        """Publish to the events stream (stored, so readers can replay it)."""
        await self.js.publish(subjects.train_events(event.job), pack(event))

    async def publish_state(self, record: JobRecord, node: str) -> None:
        """Publish a state change; best effort: the KV record is the truth."""
        event = JobEvent(
            job=record.job, kind=JobEvent.STATE, node=node, at=time.time(), record=record
        )
        try:
            await self.publish(event)
        except Exception:
            log.warning("could not publish the state of job %s", record.job, exc_info=True)

    # -- files ---------------------------------------------------------------

    async def put_input(self, job: str, name: str, path: Path) -> None:
        with path.open("rb") as source:
            await self.files.put(subjects.train_input(job, name), source)

    async def get_input(self, job: str, name: str, into: Path) -> None:
        """Write one input file of `job` to `into`; JobNotFoundError if it is missing."""
        try:
            with into.open("wb") as sink:
                await self.files.get(subjects.train_input(job, name), writeinto=sink)
        except js_errors.NotFoundError:
            raise JobNotFoundError(f"input file {name!r} of job {job!r} is missing") from None

    async def has_input(self, job: str, name: str) -> bool:
        try:
            await self.files.get_info(subjects.train_input(job, name))
        except js_errors.NotFoundError:
            return False
        return True

    async def delete_inputs(self, job: str, names: tuple[str, ...]) -> None:
        for name in names:
            try:
                await self.files.delete(subjects.train_input(job, name))
            except js_errors.NotFoundError:
                pass
            except Exception:
                log.warning("could not delete input %s of job %s", name, job, exc_info=True)

    async def put_log(self, job: str, text: bytes) -> None:
        await self.files.put(subjects.train_log(job), text)

    async def read_log(self, job: str) -> bytes | None:
        """The whole log of a finished job, or None if it was not stored."""
        buffer = io.BytesIO()
        try:
            await self.files.get(subjects.train_log(job), writeinto=buffer)
        except js_errors.NotFoundError:
            return None
        return buffer.getvalue()
