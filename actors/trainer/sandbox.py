"""What the process backend can do to confine a script: limits, a clean environment, no network.

Limits are set with setrlimit in the child before it runs the script (it
inherits them, and so do its children). The network is taken away by
moving the child into a new, empty network namespace: as root with
unshare(CLONE_NEWNET), otherwise inside a new user namespace where the
kernel allows unprivileged ones. Whether that works is found out once, at
start, by trying it; where it does not, the trainer says so in every job's
log and the script has the trainer's own network.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import os
import resource
import subprocess
import sys
from collections.abc import Callable, Mapping
from dataclasses import dataclass

CLONE_NEWUSER = 0x10000000
CLONE_NEWNET = 0x40000000
MAX_OPEN_FILES = 1024

SAFE_VARIABLES = ("LANG", "LC_ALL", "TZ")
"""The only trainer variables a script sees; NATS credentials and the like never reach it."""
PIP_VARIABLES_PREFIXES = (
    "PIP_",
    "HTTP_PROXY",
    "HTTPS_PROXY",
    "NO_PROXY",
    "http_proxy",
    "https_proxy",
    "no_proxy",
)
"""What the dependency step passes on too, so pip finds its index as the trainer would."""


def _unshare(flags: int) -> None:
    libc = ctypes.CDLL(ctypes.util.find_library("c"), use_errno=True)
    if libc.unshare(flags) != 0:
        errno = ctypes.get_errno()
        raise OSError(errno, os.strerror(errno))


def _isolate_network() -> None:
    try:
        _unshare(CLONE_NEWNET)
    except PermissionError:
        _unshare(CLONE_NEWUSER | CLONE_NEWNET)


@dataclass(frozen=True, slots=True)
class Limits:
    memory_bytes: int
    cpu_seconds: int
    isolate_network: bool

    def preexec(self) -> Callable[[], None]:
        """The function the child runs between fork and exec."""

        def apply() -> None:
            if self.isolate_network:
                _isolate_network()
            resource.setrlimit(resource.RLIMIT_AS, (self.memory_bytes, self.memory_bytes))
            resource.setrlimit(resource.RLIMIT_CPU, (self.cpu_seconds, self.cpu_seconds + 5))
            resource.setrlimit(resource.RLIMIT_CORE, (0, 0))
            soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
            cap = MAX_OPEN_FILES if hard == resource.RLIM_INFINITY else min(MAX_OPEN_FILES, hard)
            resource.setrlimit(resource.RLIMIT_NOFILE, (min(soft, cap), cap))

        return apply


def network_isolation_available() -> bool:
    """True if a child can be put in an empty network namespace here (tried once, for real)."""
    if not sys.platform.startswith("linux"):
        return False
    try:
        subprocess.run(
            [sys.executable, "-c", "pass"],
            preexec_fn=_isolate_network,
            check=True,
            capture_output=True,
            timeout=30,
        )
    except (subprocess.SubprocessError, OSError):
        return False
    return True


def script_environment(
    environ: Mapping[str, str], *, path: str, home: str, extra: Mapping[str, str]
) -> dict[str, str]:
    """A fresh environment for the script: a PATH, a HOME, the job's variables, nothing else."""
    clean = {name: environ[name] for name in SAFE_VARIABLES if name in environ}
    clean.update(
        PATH=path,
        HOME=home,
        TMPDIR=home,
        PYTHONUNBUFFERED="1",
        PYTHONDONTWRITEBYTECODE="1",
        OMP_NUM_THREADS="1",
        OPENBLAS_NUM_THREADS="1",
        MKL_NUM_THREADS="1",
    )
    clean.update(extra)
    return clean


def install_environment(environ: Mapping[str, str], *, path: str, home: str) -> dict[str, str]:
    """The dependency step's environment: the script's, plus pip's own settings and proxies."""
    clean = script_environment(environ, path=path, home=home, extra={})
    for name, value in environ.items():
        if name.startswith(PIP_VARIABLES_PREFIXES):
            clean[name] = value
    clean.pop("PYTHONDONTWRITEBYTECODE", None)
    return clean
