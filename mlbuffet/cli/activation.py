"""What a user types in another terminal to reach `mlbuffet` and this Python, when PATH does not.

`make up` runs .venv/bin/mlbuffet without activating .venv, so the README's next commands
(`mlbuffet models list`, Python snippets importing mlbuffet and PIL) would otherwise fail with
"command not found" or an ImportError in a plain shell.
"""

from __future__ import annotations

import os
from pathlib import Path


def on_path(scripts: Path, search_path: str) -> bool:
    """Whether `search_path` (a PATH value) has the folder `scripts` in it."""
    target = scripts.resolve()
    return any(entry and Path(entry).resolve() == target for entry in search_path.split(os.pathsep))


def tools_hint(scripts: Path, search_path: str) -> str | None:
    """`up`'s line on how to reach the folder of its own scripts; None when PATH already has it."""
    if on_path(scripts, search_path):
        return None
    activate = scripts / "activate"
    if activate.is_file():
        how = f"in another terminal, . {activate}"
    else:
        how = f"put {scripts} on PATH"
    return f"[up] commands    {how}, then mlbuffet models list, mlbuffet predict, python"
