"""The `process` backend: a job's script as a child process of the trainer, on this machine.

The script runs in the job's working folder with its requirements' cached
venv, a wall-clock timeout, CPU-time and address-space limits, an
environment with none of the trainer's variables, its own process group (so
a timeout or a cancel kills everything it started), and, where the platform
allows, its own user, mount and network namespaces: no network, no
capabilities, the inputs mounted read-only (see sandbox). It runs as the
trainer's user: on a shared machine use the docker backend.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
import os
import signal
from collections.abc import Mapping
from pathlib import Path

from actors.trainer import find_output
from actors.trainer.backend import JobContext, pipe_lines, wait_or_kill
from actors.trainer.sandbox import Confinement, Limits, probe_confinement, script_environment
from actors.trainer.venvs import VenvCache

log = logging.getLogger(__name__)

DEFAULT_PATH = "/usr/local/bin:/usr/bin:/bin"


class ProcessBackend:
    name = "process"

    def __init__(
        self,
        cache_dir: Path,
        environ: Mapping[str, str],
        *,
        memory_bytes: int,
        cpus: float,
        install_timeout_s: float,
        system_site_packages: bool = False,
        work_root: Path | None = None,
    ) -> None:
        self.venvs = VenvCache(cache_dir, environ, system_site_packages=system_site_packages)
        self.environ = environ
        self.memory_bytes = memory_bytes
        self.cpus = cpus
        self.install_timeout_s = install_timeout_s
        self.work_root = work_root
        self.confinement = Confinement.NONE
        self._venvs: dict[str, Path] = {}

    async def start(self) -> list[str]:
        self.confinement = await asyncio.to_thread(probe_confinement, self.work_root)
        if self.confinement is Confinement.NAMESPACES:
            return [
                "[trainer] isolation: process backend, script in its own user, mount and "
                "network namespaces (no network, no capabilities, inputs mounted read-only)"
            ]
        if self.confinement is Confinement.NETWORK:
            log.warning(
                "process backend: no user namespace can be made here; scripts get an empty "
                "network namespace, and their inputs are read-only by file mode only"
            )
            return [
                "[trainer] isolation: process backend, script in an empty network namespace; "
                "inputs read-only by file mode only (no user namespaces on this machine)"
            ]
        log.warning(
            "process backend: no network namespace can be made here (needs root or "
            "unprivileged user namespaces); scripts will have the trainer's network"
        )
        return [
            "[trainer] isolation: process backend WITHOUT network isolation "
            "(no network namespace can be made on this machine); inputs read-only by file "
            "mode only"
        ]

    async def prepare(self, ctx: JobContext) -> None:
        requirements = ctx.input_dir / ctx.spec.requirements
        self._venvs[ctx.spec.job] = await self.venvs.ensure(
            requirements, self.install_timeout_s, ctx.log
        )

    async def run(self, ctx: JobContext) -> int:
        venv = self._venvs.pop(ctx.spec.job)
        home = ctx.job_dir / "home"
        home.mkdir(exist_ok=True)
        env = script_environment(
            self.environ,
            path=f"{venv / 'bin'}:{DEFAULT_PATH}",
            home=str(home),
            extra={
                "VIRTUAL_ENV": str(venv),
                "MLBUFFET_JOB": ctx.spec.job,
                "MLBUFFET_INPUT_DIR": str(ctx.input_dir),
                "MLBUFFET_OUTPUT_DIR": str(ctx.output_dir),
                "MLBUFFET_OUTPUT_FILE": str(ctx.output_path),
            },
        )
        limits = Limits(
            memory_bytes=self.memory_bytes,
            cpu_seconds=max(1, math.ceil(self.cpus * ctx.timeout_s)),
            confinement=self.confinement,
            read_only=ctx.input_dir,
        )
        process = await asyncio.create_subprocess_exec(
            str(venv / "bin" / "python"),
            ctx.spec.script,
            str(ctx.output_path),
            cwd=ctx.working_dir,
            env=env,
            stdin=asyncio.subprocess.DEVNULL,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.STDOUT,
            start_new_session=True,
            preexec_fn=limits.preexec(),
        )
        assert process.stdout is not None
        reader = asyncio.create_task(pipe_lines(process.stdout, ctx.log))

        async def waited() -> int:
            code = await process.wait()
            # Output written just before exit is still in the pipe.
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(asyncio.shield(reader), 5)
            return code

        async def kill() -> None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(process.pid, signal.SIGKILL)

        try:
            code = await wait_or_kill(asyncio.ensure_future(waited()), ctx.timeout_s, kill)
        finally:
            # Whatever happened, nothing the script started outlives it.
            await kill()
            reader.cancel()
            # gather, not suppress: a cancel of this task itself must still go through.
            await asyncio.gather(reader, return_exceptions=True)
        if code < 0:
            ctx.log(f"[trainer] the script was killed by signal {signal.Signals(-code).name}")
        if code == 0:
            note = await asyncio.to_thread(find_output.collect, ctx.working_dir, ctx.output_path)
            if note:
                ctx.log(note)
        return code

    async def close(self) -> None:
        return None
