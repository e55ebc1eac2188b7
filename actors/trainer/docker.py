"""The `docker` backend: a job's requirements and script in two Docker containers, via aiodocker.

Step one installs the requirements into a virtualenv in a named volume,
`mlbuffet-venv-<hash of image and requirements>`, kept as a cache: the next
job with the same requirements finds the volume ready and skips pip. Step
two runs the script in a fresh container with no network, memory and CPU
limits, every capability dropped, as user nobody, the venv mounted
read-only, the inputs in /job/input (root's, so read-only to the script),
its working folder /job/work (writable, a link to each input) and
/job/output; after the script, find_output runs in the same container and
moves a model the script left in its working folder to /job/output, as the
original MLBuffet's trainer searched for it. Files go in and out through the
Docker API's archive endpoints, never host paths, so a remote daemon (TCP
with TLS client certificates) works the same as the local socket. Both
containers are removed afterwards, also on failure, timeout and cancel.
"""

from __future__ import annotations

import asyncio
import contextlib
import io
import logging
import tarfile
import time
from collections import defaultdict
from collections.abc import Callable
from pathlib import Path
from typing import Any

import aiodocker
import aiodocker.volumes
from aiodocker.containers import DockerContainer

from actors.trainer import find_output
from actors.trainer.backend import (
    MAX_LINE_CHARS,
    JobContext,
    JobFailedError,
    requirements_key,
    wait_or_kill,
    working_links,
)
from actors.trainer.config import DockerConfig
from mlbuffet.mesh.connection import client_tls_context

log = logging.getLogger(__name__)

VENV = "/opt/venv"
READY_MARK = f"{VENV}/.mlbuffet-ready"
JOB_LABEL = "mlbuffet.job"
PIDS_LIMIT = 512
INSTALL_SCRIPT = f"""set -e
if [ -f {READY_MARK} ]; then echo "[trainer] requirements: cached virtualenv volume"; exit 0; fi
python3 -m venv --clear --system-site-packages {VENV}
if grep -q '^[[:space:]]*[^#[:space:]]' /job/requirements.txt; then
  {VENV}/bin/python -m pip install --disable-pip-version-check --no-input --progress-bar off -r /job/requirements.txt
else
  echo "[trainer] requirements: none listed"
fi
touch {READY_MARK}
"""


FIND_OUTPUT = "/job/find_output.py"
RUN_SCRIPT = (
    f'{VENV}/bin/python "$1" "$2" || exit; exec {VENV}/bin/python {FIND_OUTPUT} /job/work "$2"'
)
"""sh -c: the script with its output path; once it exits 0, the search for an original-style output."""

Entry = tuple[str, bytes | str | None, int, int]
"""A tar entry: path, content (bytes: a file, str: a symbolic link's target, None: a folder), mode, uid."""


def _tar(entries: list[Entry]) -> bytes:
    """A tar of the entries, made for put_archive."""
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w") as tar:
        for path, content, mode, uid in entries:
            info = tarfile.TarInfo(path)
            info.mode = mode
            info.uid = info.gid = uid
            info.mtime = int(time.time())
            if content is None:
                info.type = tarfile.DIRTYPE
                tar.addfile(info)
            elif isinstance(content, str):
                info.type = tarfile.SYMTYPE
                info.linkname = content
                tar.addfile(info)
            else:
                info.size = len(content)
                tar.addfile(info, io.BytesIO(content))
    return buffer.getvalue()


class _LineSplitter:
    """Docker log chunks are not lines: join and split them before they reach the job's log."""

    def __init__(self, log: Callable[[str], None]) -> None:
        self.log = log
        self.partial = ""

    def feed(self, chunk: str) -> None:
        *lines, self.partial = (self.partial + chunk).split("\n")
        for line in lines:
            self.log(line[:MAX_LINE_CHARS].rstrip("\r"))
        if len(self.partial) > MAX_LINE_CHARS:
            self.log(self.partial[:MAX_LINE_CHARS] + " [line cut]")
            self.partial = ""

    def close(self) -> None:
        if self.partial:
            self.log(self.partial)
            self.partial = ""


class DockerBackend:
    name = "docker"

    def __init__(
        self, config: DockerConfig, *, memory_bytes: int, cpus: float, install_timeout_s: float
    ) -> None:
        self.config = config
        self.memory_bytes = memory_bytes
        self.cpus = cpus
        self.install_timeout_s = install_timeout_s
        self._docker: aiodocker.Docker | None = None
        self._volumes: dict[str, str] = {}
        self._locks: defaultdict[str, asyncio.Lock] = defaultdict(asyncio.Lock)

    @property
    def docker(self) -> aiodocker.Docker:
        assert self._docker is not None, "DockerBackend.start() first"
        return self._docker

    async def start(self) -> list[str]:
        # As `docker --tlsverify`: the daemon's CA, and our client certificate.
        context = client_tls_context(
            self.config.tls_ca_file, self.config.tls_cert_file, self.config.tls_key_file
        )
        url = self.config.url
        if context is not None and url and url.startswith("tcp://"):
            url = "https://" + url[len("tcp://") :]
        self._docker = aiodocker.Docker(url=url, ssl_context=context)
        try:
            version = await self.docker.version()
        except Exception as exc:
            await self.close()
            raise RuntimeError(f"the docker backend cannot reach its daemon: {exc}") from None
        try:
            await self.docker.images.inspect(self.config.image)
        except aiodocker.DockerError:
            log.warning("image %s is not on the daemon; pulling it", self.config.image)
            try:
                await self.docker.images.pull(self.config.image)
            except aiodocker.DockerError as exc:
                log.error("could not pull %s: %s; jobs will fail", self.config.image, exc.message)
        return [
            f"[trainer] isolation: docker backend (daemon {version.get('Version', '?')}), "
            f"image {self.config.image}; the script runs as {self.config.user} with no network, "
            f"{self.memory_bytes // (1 << 20)} MiB of memory and {self.cpus:g} CPUs"
        ]

    async def close(self) -> None:
        if self._docker is not None:
            await self._docker.close()
            self._docker = None

    # -- step one: requirements ----------------------------------------------

    async def prepare(self, ctx: JobContext) -> None:
        requirements = await asyncio.to_thread((ctx.input_dir / ctx.spec.requirements).read_bytes)
        key = requirements_key(requirements, self.config.image)
        volume = f"mlbuffet-venv-{key}"
        async with self._locks[key]:
            await self.docker.volumes.create(  # type: ignore[no-untyped-call]
                {
                    "Name": volume,
                    "Labels": {"mlbuffet.venv": key, "mlbuffet.image": self.config.image},
                }
            )
            ctx.log(f"[trainer] requirements: virtualenv volume {volume}")
            config = {
                "Image": self.config.image,
                "Cmd": ["sh", "-c", INSTALL_SCRIPT],
                "User": "0:0",
                "WorkingDir": "/job",
                "Env": ["PIP_DISABLE_PIP_VERSION_CHECK=1", "PYTHONUNBUFFERED=1"],
                "Labels": {JOB_LABEL: ctx.spec.job, "mlbuffet.step": "install"},
                "HostConfig": {
                    "NetworkMode": self.config.install_network,
                    "Mounts": [{"Type": "volume", "Source": volume, "Target": VENV}],
                    "Memory": self.memory_bytes,
                    "NanoCpus": int(self.cpus * 1e9),
                    "PidsLimit": PIDS_LIMIT,
                },
            }
            archive = _tar(
                [("job", None, 0o755, 0), ("job/requirements.txt", requirements, 0o444, 0)]
            )
            try:
                code = await self._run_container(
                    config, archive, ctx, self.install_timeout_s, "installing the requirements"
                )
            except BaseException:
                await asyncio.shield(self._remove_volume(volume))
                raise
            if code != 0:
                await self._remove_volume(volume)
                raise JobFailedError(
                    "installing the requirements failed (see the log)", exit_code=code
                )
        self._volumes[ctx.spec.job] = volume

    # -- step two: the script ------------------------------------------------

    async def run(self, ctx: JobContext) -> int:
        volume = self._volumes.pop(ctx.spec.job)
        spec = ctx.spec
        output = f"/job/output/{spec.output_file}"
        config = {
            "Image": self.config.image,
            "Cmd": ["sh", "-c", RUN_SCRIPT, "sh", spec.script, output],
            "User": self.config.user,
            "WorkingDir": "/job/work",
            "Env": [
                f"PATH={VENV}/bin:/usr/local/bin:/usr/bin:/bin",
                f"VIRTUAL_ENV={VENV}",
                "HOME=/tmp",
                "PYTHONUNBUFFERED=1",
                "PYTHONDONTWRITEBYTECODE=1",
                "OMP_NUM_THREADS=1",
                "OPENBLAS_NUM_THREADS=1",
                f"MLBUFFET_JOB={spec.job}",
                "MLBUFFET_INPUT_DIR=/job/input",
                "MLBUFFET_OUTPUT_DIR=/job/output",
                f"MLBUFFET_OUTPUT_FILE={output}",
            ],
            "NetworkDisabled": True,
            "Labels": {JOB_LABEL: spec.job, "mlbuffet.step": "run"},
            "HostConfig": {
                "NetworkMode": "none",
                "Mounts": [{"Type": "volume", "Source": volume, "Target": VENV, "ReadOnly": True}],
                "Memory": self.memory_bytes,
                "MemorySwap": self.memory_bytes,
                "NanoCpus": int(self.cpus * 1e9),
                "PidsLimit": PIDS_LIMIT,
                "CapDrop": ["ALL"],
                "SecurityOpt": ["no-new-privileges"],
            },
        }
        uid = int(self.config.user.split(":")[0]) if self.config.user[:1].isdigit() else 0
        finder = await asyncio.to_thread(Path(find_output.__file__).read_bytes)
        entries: list[Entry] = [
            ("job", None, 0o755, 0),
            ("job/input", None, 0o555, 0),
            ("job/work", None, 0o700, uid),
            ("job/output", None, 0o700, uid),
            (FIND_OUTPUT.lstrip("/"), finder, 0o444, 0),
        ]
        for name in spec.inputs:
            content = await asyncio.to_thread((ctx.input_dir / name).read_bytes)
            entries.append((f"job/input/{name}", content, 0o444, 0))
        for name, target in working_links(spec).items():
            entries.append((f"job/work/{name}", f"../input/{target}", 0o777, uid))
        archive = await asyncio.to_thread(_tar, entries)
        return await self._run_container(
            config, archive, ctx, ctx.timeout_s, "the script", fetch=output
        )

    # -- containers ----------------------------------------------------------

    async def _run_container(
        self,
        config: dict[str, Any],
        archive: bytes,
        ctx: JobContext,
        timeout_s: float,
        what: str,
        fetch: str | None = None,
    ) -> int:
        """Create, fill, start and wait for one container; it is removed whatever happens."""
        try:
            container = await self.docker.containers.create(config)
        except aiodocker.DockerError as exc:
            raise JobFailedError(
                f"docker could not create the container for {what}: {exc.message}"
            ) from None
        try:
            await container.put_archive("/", archive)  # type: ignore[no-untyped-call]
            await container.start()
            splitter = _LineSplitter(ctx.log)
            logs = asyncio.create_task(self._follow_logs(container, splitter))

            async def waited() -> int:
                result = await container.wait(timeout=None)
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(asyncio.shield(logs), 5)
                return int(result.get("StatusCode", -1))

            async def kill() -> None:
                with contextlib.suppress(aiodocker.DockerError):
                    await container.kill()

            try:
                code = await wait_or_kill(asyncio.ensure_future(waited()), timeout_s, kill)
            finally:
                logs.cancel()
                # gather, not suppress: a cancel of this task itself must still go through.
                await asyncio.gather(logs, return_exceptions=True)
                splitter.close()
            state = (await container.show()).get("State", {})
            if state.get("OOMKilled"):
                ctx.log(
                    f"[trainer] {what} ran out of memory ({self.memory_bytes // (1 << 20)} MiB)"
                )
            if fetch is not None and code == 0:
                await self._fetch(container, fetch, ctx)
            return code
        finally:
            await asyncio.shield(self._remove(container))

    @staticmethod
    async def _follow_logs(container: DockerContainer, splitter: _LineSplitter) -> None:
        async for chunk in container.log(stdout=True, stderr=True, follow=True):
            splitter.feed(chunk)

    async def _fetch(self, container: DockerContainer, path: str, ctx: JobContext) -> None:
        """Copy the output file out of the container; leave it missing if the script wrote none."""
        try:
            tar = await container.get_archive(path)
        except aiodocker.DockerError:
            return
        with tar:
            for member in tar.getmembers():
                if member.isfile() and member.name.rsplit("/", 1)[-1] == ctx.spec.output_file:
                    source = tar.extractfile(member)
                    if source is not None:
                        await asyncio.to_thread(ctx.output_path.write_bytes, source.read())
                    return

    async def _remove(self, container: DockerContainer) -> None:
        try:
            await container.delete(force=True, v=True)
        except aiodocker.DockerError as exc:
            if exc.status != 404:
                log.warning("could not remove container %s: %s", container.id, exc.message)

    async def _remove_volume(self, volume: str) -> None:
        try:
            await aiodocker.volumes.DockerVolume(self.docker, volume).delete()  # type: ignore[no-untyped-call]
        except aiodocker.DockerError as exc:
            log.warning("could not remove volume %s: %s", volume, exc.message)
