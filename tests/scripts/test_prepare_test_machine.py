"""scripts/prepare-test-machine, which `make test` runs before pytest: quick when the machine is
ready, and one clear line (never a silent skip) when a step cannot be done.

The machine that runs this suite has been prepared by the script already (`make test` ran it),
so its installing steps cannot be shown here; what can be shown honestly is the fast path on
this machine, and the refusals on a PATH that really lacks make, apt-get and sudo.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
SCRIPT = REPO / "scripts" / "prepare-test-machine"
FAST_PATH_BOUND_S = 5.0
"""The fast path takes about half a second on 2 idle cores; installing or building takes minutes."""
SYSTEM_BIN = ("/usr/local/sbin", "/usr/local/bin", "/usr/sbin", "/usr/bin", "/sbin", "/bin")


def run(env_path: str | None = None, user: str | None = None) -> subprocess.CompletedProcess[str]:
    env = dict(os.environ)
    if env_path is not None:
        env["PATH"] = env_path
    return subprocess.run(
        [str(SCRIPT)], capture_output=True, text=True, env=env, user=user, timeout=120, check=False
    )


@pytest.fixture
def path_without() -> Iterator[Callable[..., str]]:
    """A PATH of every system command but the ones named, in a folder anyone can read."""
    folder = Path(tempfile.mkdtemp(prefix="mlbuffet-path-"))
    folder.chmod(0o755)

    def make(*left_out: str) -> str:
        for directory in SYSTEM_BIN:
            for entry in Path(directory).iterdir() if Path(directory).is_dir() else ():
                link = folder / entry.name
                if entry.name not in left_out and not link.exists() and not link.is_symlink():
                    link.symlink_to(entry)
        return str(folder)

    yield make
    shutil.rmtree(folder)


def test_on_a_ready_machine_it_only_looks_and_is_quick() -> None:
    first = run()
    assert first.returncode == 0, first.stderr
    started = time.monotonic()
    second = run()
    took_s = time.monotonic() - started
    assert second.returncode == 0, second.stderr
    print(f"\nprepare-test-machine on a ready machine: {took_s:.2f} s")
    assert second.stderr == ""  # nothing installed, started or built
    (line,) = second.stdout.splitlines()
    assert line.startswith("prepare-test-machine: ready: Python 3.")
    assert "image mlbuffet-trainer-test:" in line
    assert took_s < FAST_PATH_BOUND_S


def test_a_user_without_root_or_sudo_gets_one_line_with_the_command_to_run(
    path_without: Callable[..., str],
) -> None:
    # Not root (nobody, when the suite runs as root), and this PATH has no make, sudo or apt-get.
    user = "nobody" if os.geteuid() == 0 else None
    result = run(path_without("make", "sudo"), user=user)
    assert result.returncode == 1
    assert result.stdout == ""
    (line,) = result.stderr.splitlines()
    assert line.startswith("prepare-test-machine: missing make")
    assert "this user is not root and has no sudo; as root run: apt-get update && " in line
    assert "apt-get install -y make" in line


def test_without_apt_get_it_names_the_packages_and_stops(path_without: Callable[..., str]) -> None:
    result = run(path_without("make", "apt-get"))
    assert result.returncode == 1
    assert result.stdout == ""
    (line,) = result.stderr.splitlines()
    assert line.startswith("prepare-test-machine: missing make")
    assert "there is no apt-get here" in line
