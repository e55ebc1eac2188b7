"""Find the model a script wrote in its working folder, the way the original MLBuffet's trainer did.

A script written for the original saves its model under the requested name
in its working folder or below it, and the original searched for it. This
trainer gives the script an output path too (its first argument); when
nothing is there, this moves the file the original would have found to
that path. Only the standard library: the docker backend copies this file
into the job's container and runs it there after the script, so nothing of
the working folder has to leave the container.
"""

from __future__ import annotations

import os
import shutil
import sys
from pathlib import Path


def candidates(working_dir: Path, name: str) -> list[Path]:
    """Regular files called `name` below `working_dir`, shallowest first, then by path.

    Symbolic links are neither followed nor taken: the working folder links
    the job's inputs, and an input is not an output.
    """
    found = []
    for root, _dirs, files in os.walk(working_dir):
        if name in files:
            path = Path(root) / name
            if path.is_file() and not path.is_symlink():
                found.append(path.relative_to(working_dir))
    return sorted(found, key=lambda p: (len(p.parts), p.as_posix()))


def collect(working_dir: Path, output_path: Path) -> str | None:
    """Move the script's model to `output_path` if it is not there yet; a line for the job's log."""
    if output_path.is_file():
        return None
    found = candidates(working_dir, output_path.name)
    if not found:
        return None
    shutil.move(working_dir / found[0], output_path)
    line = f"[trainer] {output_path.name}: found in the working folder as {found[0].as_posix()}"
    if len(found) > 1:
        line += f" (the shallowest of {len(found)} files with that name)"
    return line


if __name__ == "__main__":
    # python find_output.py <working folder> <output path>
    note = collect(Path(sys.argv[1]), Path(sys.argv[2]))
    if note:
        print(note, flush=True)
