"""One training job from start to end: inputs, requirements, script, check, registration.

The trainer that claimed the job runs this; every state change is a
compare-and-set on the job's record and a published event, and the job
ends in exactly one of succeeded, failed or cancelled, whatever happens
(a crash of the script, a bad output, a cancel, the trainer stopping).
"""

from __future__ import annotations

import asyncio
import logging
import os
import shutil
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from nats.aio.client import Client

from actors.trainer.backend import Backend, JobContext, JobFailedError, working_links
from actors.trainer.joblog import JobLog
from mlbuffet.protocol.errors import MLBuffetError, UnprocessableError
from mlbuffet.protocol.jobs import JobRecord, JobState
from mlbuffet.registry import ModelInspector, Registry, RegistryAdmin
from mlbuffet.training import JobStore

log = logging.getLogger(__name__)


@dataclass
class Outcome:
    state: JobState
    reason: str | None = None
    exit_code: int | None = None
    version: int | None = None


class JobRunner:
    """Runs one claimed job; `cancel(by_user)` is how the trainer stops it."""

    def __init__(
        self,
        *,
        nc: Client,
        store: JobStore,
        registry: Registry,
        inspector: ModelInspector,
        backend: Backend,
        node_id: str,
        work_root: Path | None,
        notes: list[str],
        timeout_s: float,
    ) -> None:
        self.nc = nc
        self.store = store
        self.admin = RegistryAdmin(registry, nc, node_id, f"trainer {node_id}")
        """Registers the output as an upload does: mapped errors, then the model events."""
        self.inspector = inspector
        self.backend = backend
        self.node_id = node_id
        self.work_root = work_root
        self.notes = notes
        self.timeout_s = timeout_s
        self.cancelled_by_user = False
        self.outcome: Outcome | None = None
        """How the job ended, once it has (the trainer's heartbeat counts outcomes)."""
        self.finishing = False
        """Set once the outcome is being recorded: too late to cancel."""

    async def run(self, record: JobRecord) -> None:
        spec = record.spec
        joblog = JobLog(self.store, spec.job, self.node_id)
        joblog.start()
        for note in self.notes:
            joblog.write(note)
        work = Path(tempfile.mkdtemp(prefix=f"mlbuffet-job-{spec.job}-", dir=self.work_root))
        outcome = Outcome(JobState.FAILED, "the trainer stopped before the job finished")
        try:
            ctx = JobContext(
                spec=spec,
                input_dir=work / "input",
                working_dir=work / "work",
                output_dir=work / "output",
                job_dir=work,
                timeout_s=self.timeout_s,
                log=joblog.write,
            )
            outcome = await self._steps(ctx)
        except asyncio.CancelledError:
            if self.cancelled_by_user:
                outcome = Outcome(JobState.CANCELLED, "cancelled by request")
            raise
        except JobFailedError as exc:
            outcome = Outcome(JobState.FAILED, exc.reason, exc.exit_code)
        except MLBuffetError as exc:
            outcome = Outcome(JobState.FAILED, exc.message)
        except Exception:
            log.exception("job %s failed in the trainer", spec.job)
            outcome = Outcome(JobState.FAILED, "internal error in the trainer (see its log)")
        finally:
            self.finishing = True
            self.outcome = outcome
            await asyncio.shield(self._finish(spec.job, spec.inputs, work, joblog, outcome))

    async def _steps(self, ctx: JobContext) -> Outcome:
        spec = ctx.spec
        ctx.log(
            f"[trainer] job {spec.job} on {self.node_id}: model {spec.model}, backend {self.backend.name}"
        )
        await self._download(ctx)
        ctx.log("[trainer] preparing: installing the requirements")
        started = time.monotonic()
        await self.backend.prepare(ctx)
        ctx.log(f"[trainer] requirements ready in {time.monotonic() - started:.1f} s")
        await self._set(spec.job, JobState.RUNNING)
        ctx.log(f"[trainer] running: python {spec.script} (timeout {ctx.timeout_s:g} s)")
        started = time.monotonic()
        code = await self.backend.run(ctx)
        ctx.log(
            f"[trainer] the script exited with code {code} after {time.monotonic() - started:.1f} s"
        )
        if code != 0:
            raise JobFailedError(f"the script exited with code {code}", exit_code=code)
        if not ctx.output_path.is_file():
            raise JobFailedError(
                f"the script exited without writing {spec.output_file!r}: at the path given "
                "as its first argument ($MLBUFFET_OUTPUT_FILE), or anywhere in its working folder",
                exit_code=0,
            )
        await self._set(spec.job, JobState.REGISTERING, exit_code=0)
        ctx.log(f"[trainer] registering: checking {spec.output_file} with onnxruntime")
        try:
            model = await self.inspector.inspect(ctx.output_path)
        except UnprocessableError as exc:
            raise JobFailedError(f"{spec.output_file!r}: {exc.message}", exit_code=0) from None
        record, version = await self.admin.upload(
            spec.model,
            model,
            description=spec.description or f"trained by job {spec.job}",
            filename=spec.output_file,
            make_default=spec.make_default,
        )
        ctx.log(
            f"[trainer] registered {spec.model}:{version}"
            + (" (the default version now)" if record.default_version == version else "")
        )
        return Outcome(JobState.SUCCEEDED, exit_code=0, version=version)

    async def _download(self, ctx: JobContext) -> None:
        for folder in (ctx.input_dir, ctx.working_dir, ctx.output_dir):
            folder.mkdir()
        for name in ctx.spec.inputs:
            await self.store.get_input(ctx.spec.job, name, ctx.input_dir / name)
            (ctx.input_dir / name).chmod(0o444)
        ctx.input_dir.chmod(0o555)
        for name, target in working_links(ctx.spec).items():
            (ctx.working_dir / name).symlink_to(Path("..", ctx.input_dir.name, target))

    async def _set(self, job: str, state: JobState, **changes: Any) -> None:
        def change(current: JobRecord) -> JobRecord:
            if current.state.finished or current.node != self.node_id:
                raise JobFailedError(
                    f"the job was taken away from this trainer ({current.state.value})"
                )
            return current.with_changes(state=state, **changes)

        entry = await self.store.change(job, change)
        await self.store.publish_state(entry.record, self.node_id)

    async def _finish(
        self, job: str, inputs: tuple[str, ...], work: Path, joblog: JobLog, outcome: Outcome
    ) -> None:
        """Record the outcome: the log first (so a follower has every line), then the state."""
        await asyncio.to_thread(_remove_tree, work)
        line = f"[trainer] {outcome.state.value}"
        if outcome.version is not None:
            line += f": version {outcome.version}"
        if outcome.reason:
            line += f": {outcome.reason}"
        joblog.write(line)
        await joblog.close()
        now = time.time()

        def finish(current: JobRecord) -> JobRecord:
            if current.state.finished:
                return current
            return current.with_changes(
                state=outcome.state,
                finished_at=now,
                reason=outcome.reason,
                exit_code=outcome.exit_code if outcome.exit_code is not None else current.exit_code,
                version=outcome.version,
                lease_until=None,
            )

        try:
            entry = await self.store.change(job, finish)
            await self.store.publish_state(entry.record, self.node_id)
        except Exception:
            log.exception("could not record the end of job %s", job)
        # The inputs have served; the log and the record stay.
        await self.store.delete_inputs(job, inputs)


def _remove_tree(path: Path) -> None:
    for folder in (path / "input",):
        if folder.exists():
            folder.chmod(0o755)
    shutil.rmtree(path, ignore_errors=True)
    if path.exists():  # a script's own read-only folders
        for root, dirs, _ in os.walk(path):
            for name in dirs:
                os.chmod(os.path.join(root, name), 0o755)
        shutil.rmtree(path, ignore_errors=True)
