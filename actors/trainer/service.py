"""The trainer actor: accepts jobs on mlbuffet.train.submit and runs queued ones from the jobs bucket.

Accepting and running are separate. Any trainer (queue group `trainer`)
accepts a job: it checks the job and its files and writes the record,
queued, into the jobs KV bucket. Every trainer watches that bucket and, with
room for another job (`max_jobs`), claims the oldest queued one with a
compare-and-set, so each job runs exactly once and a queued job waits for
any trainer, not the one that accepted it: if that one dies, another runs
the job, and a trainer started later finds the queue as it was.

A trainer holding a job renews a lease on it (`lease_until`) every
LEASE_RENEW_S. A trainer that dies stops renewing, and any other trainer
marks its jobs failed once the lease has run out; a trainer restarted with
the same node id fails its own unfinished jobs at once. Jobs are not re-run:
a script may have had effects, and the user decides.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections import Counter
from dataclasses import replace
from typing import Any

from nats.aio.client import Client
from nats.aio.msg import Msg

from actors.base import Actor, ActorState
from actors.trainer.backend import Backend
from actors.trainer.config import TrainerConfig
from actors.trainer.job import JobRunner
from mlbuffet.observe.event_history import open_event_history
from mlbuffet.observe.heartbeat import NodeLoad
from mlbuffet.observe.presence import Presence
from mlbuffet.protocol import subjects
from mlbuffet.protocol.errors import BadRequestError, MLBuffetError, UnprocessableError
from mlbuffet.protocol.jobs import JobRecord, JobState, TrainAccepted, TrainJob
from mlbuffet.protocol.names import parse_file_name, parse_job_id, parse_model_name
from mlbuffet.protocol.wire import pack, pack_error, unpack, unpack_map
from mlbuffet.registry import ModelInspector, Registry
from mlbuffet.registry.buckets import watch_from_start
from mlbuffet.training import JobStore

log = logging.getLogger(__name__)

LEASE_S = 45.0
"""How long a job stays held without a renewal before another trainer declares it abandoned."""
LEASE_RENEW_S = 10.0
STOP_WAIT_S = 5.0
SCHEDULE_TICK_S = 2.0
"""The scheduler also runs this often without a change in the bucket (to see leases run out)."""


class _NotQueued(Exception):
    """Another trainer claimed the job first."""


class TrainerService(Actor):
    role = "trainer"

    def __init__(self, nc: Client, config: TrainerConfig, node_id: str, backend: Backend) -> None:
        super().__init__(nc, node_id, max_inflight=config.max_jobs)
        self.config = config
        self.backend = backend
        self.jobs: dict[str, JobRecord] = {}
        """Unfinished jobs of the bucket, kept current by a KV watch."""
        self.active: dict[str, JobRunner] = {}
        self._tasks_by_job: dict[str, asyncio.Task[Any]] = {}
        self._wake = asyncio.Event()
        self._background: list[asyncio.Task[None]] = []
        self._watcher: Any = None
        self._notes: list[str] = []
        self.inspector = ModelInspector()
        self.finished: Counter[str] = Counter()
        """Jobs this trainer ran to an end, by final state (succeeded, failed, cancelled)."""
        self.presence = Presence(
            nc, self.role, node_id, self.heartbeat_load, config.heartbeat_interval_s
        )

    async def on_start(self) -> None:
        js = self.nc.jetstream()
        self.store = await JobStore.open(js, replicas=self.config.registry_replicas)
        self.registry, _ = await Registry.open(js, replicas=self.config.registry_replicas)
        await open_event_history(js, self.config.registry_replicas)
        self._notes = await self.backend.start()
        self._watcher = await watch_from_start(self.store.kv, self._apply)
        await self._schedule_once()  # fails this node's own leftovers before taking anything
        self._background = [
            asyncio.create_task(self._follow(), name="trainer-watch"),
            asyncio.create_task(self._schedule(), name="trainer-schedule"),
            asyncio.create_task(self._renew_leases(), name="trainer-leases"),
        ]
        await self.subscribe(
            subjects.train_submit(), queue=subjects.TRAINER_QUEUE, cb=self._on_submit
        )
        await self.presence.start()

    async def on_stop(self) -> None:
        await self.presence.stop()
        for task in self._background:
            task.cancel()
        if self._background:
            await asyncio.wait(self._background, timeout=STOP_WAIT_S)
        if self._watcher is not None:
            with contextlib.suppress(Exception):
                await self._watcher.stop()
        self.inspector.close()
        await self.backend.close()

    def heartbeat_load(self) -> NodeLoad:
        """Jobs running here now, jobs waiting in the bucket, and how this trainer's jobs ended."""
        queued = sum(1 for r in self.jobs.values() if r.state is JobState.QUEUED)
        return NodeLoad(
            in_flight=len(self.active),
            counters={
                "running": sorted(self.active),
                "queued": queued,
                "finished": dict(self.finished),
            },
        )

    # -- accepting -----------------------------------------------------------

    async def _on_submit(self, msg: Msg) -> None:
        try:
            # A request is parsed, never raised: an "error" field in it means nothing.
            spec = self._checked(TrainJob.from_dict(unpack_map(msg.data)))
            for name in spec.inputs:
                if not await self.store.has_input(spec.job, name):
                    raise UnprocessableError(
                        f"file {name!r} of job {spec.job} is not in the object store "
                        f"{subjects.TRAIN_FILES_BUCKET}; upload it before submitting"
                    )
            now = time.time()
            record = JobRecord(
                spec=spec,
                state=JobState.QUEUED,
                submitted_at=now,
                updated_at=now,
                accepted_by=self.node_id,
            )
            await self.store.create(record)
            await self.store.publish_state(record, self.node_id)
            reply = pack(TrainAccepted(job=spec.job, state=JobState.QUEUED, node=self.node_id))
            log.info("job %s for model %s queued", spec.job, spec.model)
        except MLBuffetError as exc:
            reply = pack_error(exc)
        except Exception:
            log.exception("a job submission failed")
            reply = pack_error(MLBuffetError("internal error in the trainer"))
        if msg.reply:
            try:
                await msg.respond(reply)
            except Exception:
                log.warning("could not answer a job submission", exc_info=True)

    def _checked(self, spec: TrainJob) -> TrainJob:
        parse_job_id(spec.job)
        parse_model_name(spec.model)
        for name in (*spec.inputs, spec.output_file):
            parse_file_name(name)
        if not spec.data:
            raise UnprocessableError("the job has no dataset")
        if len(set(spec.inputs)) != len(spec.inputs):
            raise BadRequestError("two input files of the job have the same name")
        timeout = spec.timeout_s if spec.timeout_s is not None else self.config.default_timeout_s
        if not 0 < timeout <= self.config.max_timeout_s:
            raise UnprocessableError(
                f"timeout {timeout:g} s: give a number of seconds from 1 to {self.config.max_timeout_s:g}"
            )
        return replace(spec, timeout_s=timeout)

    # -- watching and scheduling ----------------------------------------------

    def _apply(self, entry: Any) -> None:
        if entry.operation in ("DEL", "PURGE") or not entry.value:
            self.jobs.pop(entry.key, None)
        else:
            try:
                record = unpack(entry.value, JobRecord.from_dict)
            except MLBuffetError:
                log.error("job record %r is unreadable", entry.key)
                return
            if record.state.finished:
                self.jobs.pop(entry.key, None)
            else:
                self.jobs[entry.key] = record
        self._wake.set()

    async def _follow(self) -> None:
        async for entry in self._watcher:
            if entry is not None:
                self._apply(entry)

    async def _schedule(self) -> None:
        while True:
            # asyncio.timeout, not wait_for: on 3.11 wait_for can swallow a cancel that
            # arrives as the wait ends, and this loop would outlive its actor.
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(SCHEDULE_TICK_S):
                    await self._wake.wait()
            self._wake.clear()
            try:
                await self._schedule_once()
            except Exception:
                log.exception("trainer %s: scheduling failed; trying again", self.node_id)

    async def _schedule_once(self) -> None:
        await self._fail_abandoned()
        self._cancel_requested()
        if self.state in (ActorState.STARTING, ActorState.RUNNING):
            await self._claim_queued()

    async def _fail_abandoned(self) -> None:
        now = time.time()
        for record in list(self.jobs.values()):
            if not record.state.active or record.job in self.active:
                continue
            if record.node == self.node_id:
                reason = f"trainer {self.node_id} restarted while the job was {record.state.value}; submit it again"
            elif record.lease_until is not None and record.lease_until < now:
                reason = f"trainer {record.node} stopped responding while the job was {record.state.value}; submit it again"
            else:
                continue
            await self._fail(record, reason)

    async def _fail(self, record: JobRecord, reason: str) -> None:
        def fail(current: JobRecord) -> JobRecord:
            if current.state.finished or current.updated_at != record.updated_at:
                return current  # someone moved it on meanwhile: look again next round
            return current.with_changes(
                state=JobState.FAILED, finished_at=time.time(), reason=reason, lease_until=None
            )

        entry = await self.store.change(record.job, fail)
        if entry.record.state is JobState.FAILED and entry.record.reason == reason:
            log.warning("job %s: %s", record.job, reason)
            await self.store.publish_state(entry.record, self.node_id)

    def _cancel_requested(self) -> None:
        for job, runner in self.active.items():
            record = self.jobs.get(job)
            task = self._tasks_by_job.get(job)
            if (
                task is not None
                and record is not None
                and record.cancel_requested
                and not runner.finishing
            ):
                # Again on every pass until the job ends: on 3.11 a cancel can be lost in an
                # asyncio.wait_for deep in a library, and the job must not run on.
                if not runner.cancelled_by_user:
                    log.info("job %s: cancel requested", job)
                runner.cancelled_by_user = True
                task.cancel()

    async def _claim_queued(self) -> None:
        queued = sorted(
            (r for r in self.jobs.values() if r.state is JobState.QUEUED),
            key=lambda r: r.submitted_at,
        )
        for record in queued:
            if len(self.active) >= self.config.max_jobs:
                return
            claimed = await self._claim(record.job)
            if claimed is not None:
                await self._start(claimed)

    async def _claim(self, job: str) -> JobRecord | None:
        now = time.time()

        def claim(current: JobRecord) -> JobRecord:
            if current.state is not JobState.QUEUED or current.cancel_requested:
                raise _NotQueued
            return current.with_changes(
                state=JobState.PREPARING,
                node=self.node_id,
                backend=self.backend.name,
                started_at=now,
                lease_until=now + LEASE_S,
            )

        try:
            entry = await self.store.change(job, claim)
        except (_NotQueued, MLBuffetError):
            return None
        cached = self.jobs.get(job)
        if cached is None or cached.updated_at <= entry.record.updated_at:
            # The watch may have brought a newer record (a cancel) already: keep that one.
            self.jobs[job] = entry.record
        await self.store.publish_state(entry.record, self.node_id)
        log.info("job %s claimed by %s", job, self.node_id)
        return entry.record

    async def _start(self, record: JobRecord) -> None:
        runner = JobRunner(
            nc=self.nc,
            store=self.store,
            registry=self.registry,
            inspector=self.inspector,
            backend=self.backend,
            node_id=self.node_id,
            work_root=self.config.work_dir,
            notes=self._notes,
            timeout_s=record.spec.timeout_s or self.config.default_timeout_s,
        )
        self.active[record.job] = runner
        # In the actor's TaskSet: drain waits for running jobs like for any in-flight work.
        await self.tasks.spawn(self._run(runner, record), name=f"job-{record.job}")

    async def _run(self, runner: JobRunner, record: JobRecord) -> None:
        task = asyncio.current_task()
        assert task is not None
        self._tasks_by_job[record.job] = task
        try:
            await runner.run(record)
        finally:
            if runner.outcome is not None:
                self.finished[runner.outcome.state.value] += 1
            self.active.pop(record.job, None)
            self._tasks_by_job.pop(record.job, None)
            self._wake.set()

    async def _renew_leases(self) -> None:
        while True:
            await asyncio.sleep(LEASE_RENEW_S)
            for job in list(self.active):
                try:
                    await self._renew(job)
                except Exception:
                    log.warning("could not renew the lease of job %s", job, exc_info=True)

    async def _renew(self, job: str) -> None:
        until = time.time() + LEASE_S

        def renew(current: JobRecord) -> JobRecord:
            if current.state.finished or current.node != self.node_id:
                return current
            return current.with_changes(lease_until=until)

        await self.store.change(job, renew)
