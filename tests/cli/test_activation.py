"""`up`'s hint on how to reach `mlbuffet` and its Python: shown only when PATH lacks them."""

from __future__ import annotations

import sys
from pathlib import Path

from mlbuffet.cli.activation import on_path, tools_hint

SCRIPTS = Path(sys.executable).parent
"""The scripts folder of the virtualenv the tests run from (it has bin/activate)."""


def test_a_path_without_the_virtualenv_gets_the_activate_command() -> None:
    hint = tools_hint(SCRIPTS, "/usr/local/bin:/usr/bin:/bin")
    assert hint == (
        f"[up] commands    in another terminal, . {SCRIPTS / 'activate'}, "
        "then mlbuffet models list, mlbuffet predict, python"
    )


def test_a_path_with_the_virtualenv_gets_no_hint(tmp_path: Path) -> None:
    assert tools_hint(SCRIPTS, f"/usr/bin:{SCRIPTS}:/bin") is None
    # The same folder by another name (a symlink, as `.venv` often is) is the same folder.
    alias = tmp_path / "venv-bin"
    alias.symlink_to(SCRIPTS)
    assert on_path(SCRIPTS, f"{alias}:/usr/bin")


def test_scripts_outside_a_virtualenv_are_put_on_path(tmp_path: Path) -> None:
    assert tools_hint(tmp_path, "/usr/bin:/bin") == (
        f"[up] commands    put {tmp_path} on PATH, then mlbuffet models list, mlbuffet predict, python"
    )
    assert tools_hint(tmp_path, f":{tmp_path}") is None
