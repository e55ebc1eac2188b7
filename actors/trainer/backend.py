"""What a backend does for a job, whatever it runs the job in.

The trainer downloads a job's inputs into `input_dir`, then asks its backend
to `prepare` (install the requirements) and `run` (the script, until it
exits or its time is up), after which the output file must be in
`output_dir`: the script writes it there (its first argument), or under its
name anywhere in its working folder, from where the backend moves it (see
find_output). A backend cleans up after itself in both steps, also when it
is cancelled.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

from mlbuffet.protocol.jobs import TrainJob

MAX_LINE_CHARS = 4000
"""A longer output line is cut: one line must not fill the log."""


class JobFailedError(Exception):
    """The job cannot go on; `reason` is what its record and the user will read."""

    def __init__(self, reason: str, exit_code: int | None = None) -> None:
        super().__init__(reason)
        self.reason = reason
        self.exit_code = exit_code


ORIGINAL_DATASET_NAMES = {".csv": "dataset.csv", ".zip": "dataset.zip"}
"""The original MLBuffet renamed a .csv or .zip dataset to these, and its scripts open them so."""


@dataclass(frozen=True, slots=True)
class JobContext:
    spec: TrainJob
    input_dir: Path
    """The job's input files (script, requirements, data), read-only to the script."""
    working_dir: Path
    """The script's working directory: writable scratch, with a link to each input."""
    output_dir: Path
    """Where the output file must be once `run` returns 0."""
    job_dir: Path
    """The job's own folder (holds the three above); removed after the job."""
    timeout_s: float
    log: Callable[[str], None]

    @property
    def output_path(self) -> Path:
        return self.output_dir / self.spec.output_file


def working_links(spec: TrainJob) -> dict[str, str]:
    """The links in the script's working folder: a name there -> the input file it points to.

    Every input under its own name, and the dataset also under the name the
    original MLBuffet gave it (dataset.csv), unless an input has that name.
    """
    links = {name: name for name in spec.inputs}
    dataset = spec.data[0]
    alias = ORIGINAL_DATASET_NAMES.get(Path(dataset).suffix.lower())
    if alias is not None and alias not in links:
        links[alias] = dataset
    return links


def requirement_lines(requirements: bytes) -> list[str]:
    """The requirements in a requirements file: stripped, sorted, without comments and blanks."""
    lines = (
        line.split(" #", 1)[0].strip()
        for line in requirements.decode("utf-8", "replace").splitlines()
    )
    return sorted({line for line in lines if line and not line.startswith("#")})


def requirements_key(requirements: bytes, *salt: str) -> str:
    """The cache key of a requirements set: its lines, stripped and sorted, plus `salt`."""
    digest = hashlib.sha256("\n".join([*salt, "--", *requirement_lines(requirements)]).encode())
    return digest.hexdigest()[:16]


async def pipe_lines(stream: asyncio.StreamReader, log: Callable[[str], None]) -> None:
    """Copy a child's output into the job's log, line by line."""
    async for line in _lines(stream):
        log(line)


async def _lines(stream: asyncio.StreamReader) -> AsyncIterator[str]:
    while True:
        try:
            raw = await stream.readuntil(b"\n")
        except asyncio.IncompleteReadError as exc:
            if exc.partial:
                yield _text(exc.partial)
            return
        except asyncio.LimitOverrunError as exc:
            raw = await stream.readexactly(exc.consumed)
        yield _text(raw)


def _text(raw: bytes) -> str:
    line = raw.decode("utf-8", "replace").rstrip("\r\n")
    return line if len(line) <= MAX_LINE_CHARS else line[:MAX_LINE_CHARS] + " [line cut]"


class Backend(Protocol):
    """Runs jobs somewhere: this machine's processes, or Docker containers."""

    name: str

    async def start(self) -> list[str]:
        """Check the backend can work; returns notes on its isolation for the log."""
        ...

    async def prepare(self, ctx: JobContext) -> None:
        """Install the job's requirements (cached); JobFailedError if they do not install."""
        ...

    async def run(self, ctx: JobContext) -> int:
        """Run the script to its end; its exit code. JobFailedError on a timeout."""
        ...

    async def close(self) -> None: ...


async def wait_or_kill(
    wait: asyncio.Future[int] | asyncio.Task[int],
    timeout_s: float,
    kill: Callable[[], Awaitable[None]],
) -> int:
    """Await `wait` for up to `timeout_s`; on timeout or cancellation call `kill` first."""
    try:
        async with asyncio.timeout(timeout_s):
            return await asyncio.shield(wait)
    except TimeoutError:
        await kill()
        with contextlib.suppress(Exception):
            await asyncio.wait_for(wait, 10)
        raise JobFailedError(
            f"the script ran out of time ({timeout_s:g} s) and was stopped"
        ) from None
    except asyncio.CancelledError:
        await asyncio.shield(kill())
        with contextlib.suppress(Exception):
            await asyncio.wait_for(asyncio.shield(wait), 10)
        raise
