"""Sampling profiles of the gateway and a modelhost under load, with py-spy (the `dev` extra).

py-spy reads a running process from outside (no instrumentation, so the
figures under profile are close to the real ones) and writes collapsed
stacks; `summary` turns them into the table docs/performance.md quotes.
"""

from __future__ import annotations

import collections
import shutil
import subprocess
import sys
from pathlib import Path

SAMPLES_PER_S = 200


def start(pid: int, seconds: float, out: Path) -> subprocess.Popen[bytes] | None:
    """Record `pid` for `seconds` into `out` (collapsed stacks); None if py-spy is missing."""
    beside = Path(sys.executable).parent / "py-spy"  # a virtualenv run without activating it
    binary = shutil.which("py-spy") or (str(beside) if beside.exists() else None)
    if binary is None:
        return None
    return subprocess.Popen(
        [
            binary,
            "record",
            "--pid",
            str(pid),
            "--duration",
            str(max(1, round(seconds))),
            "--rate",
            str(SAMPLES_PER_S),
            "--format",
            "raw",
            "--nonblocking",
            "--output",
            str(out),
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )


def summary(path: Path, top: int = 20) -> str:
    """The frames where the samples were (self) and under which they were (inclusive)."""
    own: collections.Counter[str] = collections.Counter()
    under: collections.Counter[str] = collections.Counter()
    total = 0
    for line in path.read_text().splitlines():
        if not line.strip():
            continue
        stack, _, count = line.rpartition(" ")
        n = int(count)
        total += n
        frames = stack.split(";")
        own[frames[-1]] += n
        for frame in set(frames):
            under[frame] += n
    if not total:
        return f"{path.name}: no samples"
    lines = [f"{path.name}: {total} samples", "  self:"]
    lines += [f"    {100 * n / total:5.1f}%  {frame}" for frame, n in own.most_common(top)]
    lines.append("  inclusive:")
    lines += [f"    {100 * n / total:5.1f}%  {frame}" for frame, n in under.most_common(top + 10)]
    return "\n".join(lines)
