"""A training job's files as the client takes them (paths or bytes), staged for submit_job.

submit_job uploads local files; bytes given by a program are written to a
private temporary folder first, under the names the job will see.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from mlbuffet.protocol.errors import BadRequestError
from mlbuffet.protocol.names import parse_file_name

FileInput = str | Path | bytes
"""A file of a job: a local path, or its content (named by default)."""
ExtraFile = str | Path | tuple[str, bytes]
"""A further data file: a local path, or (name, content)."""

DEFAULT_NAMES = {"script": "train.py", "requirements": "requirements.txt", "dataset": "dataset"}


@dataclass(frozen=True, slots=True)
class StagedFiles:
    script: str
    requirements: str
    data: tuple[str, ...]
    """The dataset first, then the extra files."""
    paths: dict[str, Path]
    """Every file name -> the local file holding it."""


def stage_files(
    folder: Path,
    script: FileInput,
    requirements: FileInput,
    dataset: FileInput,
    extra_files: Sequence[ExtraFile] = (),
) -> StagedFiles:
    """Name each file (its own name, or the default for bytes) and write bytes into `folder`.

    BadRequestError (400) for a missing file, a bad name, or two files with one name.
    """
    paths: dict[str, Path] = {}

    def add(given: FileInput, default: str, what: str) -> str:
        if isinstance(given, bytes):
            name = parse_file_name(default, f"file name of {what}")
            path = folder / name
            path.write_bytes(given)
        else:
            path = Path(given)
            name = parse_file_name(path.name, f"file name of {what}")
            if not path.is_file():
                raise BadRequestError(f"{what} {str(path)!r}: no such file")
        if name in paths:
            raise BadRequestError(f"two files of the job are named {name!r}; rename one")
        paths[name] = path
        return name

    script_name = add(script, DEFAULT_NAMES["script"], "script")
    requirements_name = add(requirements, DEFAULT_NAMES["requirements"], "requirements")
    data = [add(dataset, DEFAULT_NAMES["dataset"], "dataset")]
    for extra in extra_files:
        if isinstance(extra, tuple):
            name, content = extra
            data.append(add(content, name, "data file"))
        else:
            data.append(add(extra, "", "data file"))
    return StagedFiles(script_name, requirements_name, tuple(data), paths)
