"""Virtualenvs for the process backend, one per requirements set, cached by its hash.

A venv is built in a temporary folder next to the cache and renamed into
place only once pip has succeeded, so a half-built venv is never used; a
file lock per key makes trainers (or test workers) on the same machine
build each venv once and wait for each other.
"""

from __future__ import annotations

import asyncio
import fcntl
import os
import shutil
import sys
import tempfile
from collections.abc import Callable, Mapping
from pathlib import Path

from actors.trainer.backend import JobFailedError, pipe_lines, requirement_lines, requirements_key
from actors.trainer.sandbox import install_environment


def _lock(path: Path) -> int:
    fd = os.open(path, os.O_CREAT | os.O_RDWR, 0o600)
    fcntl.flock(fd, fcntl.LOCK_EX)
    return fd


def _unlock(fd: int) -> None:
    fcntl.flock(fd, fcntl.LOCK_UN)
    os.close(fd)


class VenvCache:
    """Finds or builds the venv of a requirements file under `root`."""

    def __init__(
        self,
        root: Path,
        environ: Mapping[str, str],
        *,
        system_site_packages: bool = False,
        python: str | None = None,
    ) -> None:
        self.root = root
        self.environ = environ
        self.system_site_packages = system_site_packages
        # The interpreter behind any venv we run in: the same for every checkout of the project.
        self.python = python or os.path.realpath(sys.executable)

    def key(self, requirements: bytes) -> str:
        version = f"{sys.version_info.major}.{sys.version_info.minor}"
        return requirements_key(
            requirements, self.python, version, f"system-site={self.system_site_packages}"
        )

    async def ensure(
        self, requirements: Path, timeout_s: float, log: Callable[[str], None]
    ) -> Path:
        """The venv's folder, built now if no job has needed these requirements before."""
        key = self.key(await asyncio.to_thread(requirements.read_bytes))
        venv = self.root / "venvs" / key
        if (venv / "bin" / "python").exists():
            log(f"[trainer] requirements: cached virtualenv {key}")
            return venv
        venv.parent.mkdir(parents=True, exist_ok=True)
        fd = await asyncio.to_thread(_lock, venv.parent / f"{key}.lock")
        try:
            if (venv / "bin" / "python").exists():
                log(f"[trainer] requirements: cached virtualenv {key} (built by another job)")
                return venv
            log(f"[trainer] requirements: building virtualenv {key}")
            await asyncio.wait_for(self._build(venv, requirements, log), timeout_s)
            return venv
        except TimeoutError:
            raise JobFailedError(
                f"installing the requirements took longer than {timeout_s:g} s"
            ) from None
        finally:
            _unlock(fd)

    async def _build(self, venv: Path, requirements: Path, log: Callable[[str], None]) -> None:
        building = Path(
            tempfile.mkdtemp(prefix=f"{venv.name}.", suffix=".building", dir=venv.parent)
        )
        try:
            args = [self.python, "-m", "venv"]
            if self.system_site_packages:
                args.append("--system-site-packages")
            await self._step([*args, str(building)], log, "creating the virtualenv failed")
            if not requirement_lines(await asyncio.to_thread(requirements.read_bytes)):
                log("[trainer] requirements: none listed")
                await asyncio.to_thread(building.rename, venv)
                return
            await self._step(
                [
                    str(building / "bin" / "python"),
                    "-m",
                    "pip",
                    "install",
                    "--disable-pip-version-check",
                    "--no-input",
                    "--progress-bar",
                    "off",
                    "-r",
                    str(requirements),
                ],
                log,
                "installing the requirements failed (see the log)",
            )
            await asyncio.to_thread(building.rename, venv)
        finally:
            await asyncio.to_thread(shutil.rmtree, building, True)

    async def _step(self, argv: list[str], log: Callable[[str], None], failure: str) -> None:
        env = install_environment(
            self.environ, path=self.environ.get("PATH", "/usr/bin:/bin"), home=str(self.root)
        )
        env.setdefault("PIP_CACHE_DIR", str(self.root / "pip"))
        process = await asyncio.create_subprocess_exec(
            *argv,
            stdin=asyncio.subprocess.DEVNULL,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.STDOUT,
            env=env,
            start_new_session=True,
        )
        assert process.stdout is not None
        try:
            await pipe_lines(process.stdout, log)
            code = await process.wait()
        except BaseException:
            if process.returncode is None:
                process.kill()
                await process.wait()
            raise
        if code != 0:
            raise JobFailedError(failure, exit_code=code)
