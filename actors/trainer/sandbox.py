"""What the process backend can do to confine a script: limits, a clean environment, no network.

Limits are set with setrlimit in the child before it runs the script (it
inherits them, and so do its children). The rest is done with namespaces,
found out once, at start, by trying them (Confinement):

- NAMESPACES: the child enters a new user, mount and network namespace,
  bind-mounts the job's input folder read-only onto itself, then runs the
  script. Its user is unmapped there, so the script runs without any
  capability, as root too: it cannot remount or unmount the folder, and a
  namespace it makes itself gets the mount locked read-only by the kernel.
  The inputs stay unchanged even when the trainer runs as root, where
  file modes stop nothing.
- NETWORK (user namespaces off, the trainer root): an empty network
  namespace only; the inputs are read-only by file mode, which root ignores.
- NONE: neither; every job's log says so and the script has the trainer's
  network.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import enum
import functools
import os
import resource
import subprocess
import sys
import tempfile
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path

CLONE_NEWNS = 0x00020000
CLONE_NEWUSER = 0x10000000
CLONE_NEWNET = 0x40000000
MS_RDONLY = 0x1
MS_REMOUNT = 0x20
MS_BIND = 0x1000
MS_REC = 0x4000
MS_PRIVATE = 0x40000
# A remount in a user namespace must keep the flags the kernel locked on the mount it copies.
KEPT_MOUNT_FLAGS = {
    os.ST_NOSUID: 0x2,
    os.ST_NODEV: 0x4,
    os.ST_NOEXEC: 0x8,
    os.ST_NOATIME: 0x400,
    os.ST_NODIRATIME: 0x800,
    os.ST_RELATIME: 0x200000,
}
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


class Confinement(enum.Enum):
    """How far the process backend can confine a script on this machine (see the module's doc)."""

    NAMESPACES = "namespaces"
    NETWORK = "network"
    NONE = "none"


def _check(result: int) -> None:
    if result != 0:
        errno = ctypes.get_errno()
        raise OSError(errno, os.strerror(errno))


@functools.cache
def _libc() -> ctypes.CDLL:
    # Loaded in the parent (find_library runs programs): a forked child only calls into it.
    libc = ctypes.CDLL(ctypes.util.find_library("c"), use_errno=True)
    text = ctypes.c_char_p
    libc.mount.argtypes = [text, text, text, ctypes.c_ulong, ctypes.c_void_p]
    return libc


def _isolate_network() -> None:
    libc = _libc()
    try:
        _check(libc.unshare(CLONE_NEWNET))
    except PermissionError:
        _check(libc.unshare(CLONE_NEWUSER | CLONE_NEWNET))


def _confine(read_only: Path) -> None:
    """In the child: new user, mount and network namespaces; `read_only` bind-mounted read-only."""
    libc = _libc()
    folder = os.fsencode(read_only)
    _check(libc.unshare(CLONE_NEWUSER | CLONE_NEWNS | CLONE_NEWNET))
    # Private: the bind mount must not appear outside, nor the host's later mounts inside.
    _check(libc.mount(None, b"/", None, MS_REC | MS_PRIVATE, None))
    _check(libc.mount(folder, folder, None, MS_BIND, None))
    flags = os.statvfs(read_only).f_flag
    kept = sum(ms for st, ms in KEPT_MOUNT_FLAGS.items() if flags & st)
    _check(libc.mount(None, folder, None, MS_REMOUNT | MS_BIND | MS_RDONLY | kept, None))


@dataclass(frozen=True, slots=True)
class Limits:
    memory_bytes: int
    cpu_seconds: int
    confinement: Confinement
    read_only: Path
    """The folder the script must not change (the job's inputs)."""

    def preexec(self) -> Callable[[], None]:
        """The function the child runs between fork and exec."""
        _libc()

        def apply() -> None:
            if self.confinement is Confinement.NAMESPACES:
                _confine(self.read_only)
            elif self.confinement is Confinement.NETWORK:
                _isolate_network()
            resource.setrlimit(resource.RLIMIT_AS, (self.memory_bytes, self.memory_bytes))
            resource.setrlimit(resource.RLIMIT_CPU, (self.cpu_seconds, self.cpu_seconds + 5))
            resource.setrlimit(resource.RLIMIT_CORE, (0, 0))
            soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
            cap = MAX_OPEN_FILES if hard == resource.RLIM_INFINITY else min(MAX_OPEN_FILES, hard)
            resource.setrlimit(resource.RLIMIT_NOFILE, (min(soft, cap), cap))

        return apply


READ_ONLY_CHECK = (
    "import os, sys; sys.exit(0 if os.statvfs(sys.argv[1]).f_flag & os.ST_RDONLY else 1)"
)


def _works(preexec: Callable[[], None], code: str = "pass", *args: str) -> bool:
    """True if a child that runs `preexec` then `python -c code args` exits 0."""
    try:
        subprocess.run(
            [sys.executable, "-c", code, *args],
            preexec_fn=preexec,
            check=True,
            capture_output=True,
            timeout=30,
        )
    except (subprocess.SubprocessError, OSError):
        return False
    return True


def probe_confinement(work_root: Path | None) -> Confinement:
    """What this machine allows, tried once for real, on the file system the jobs' folders use."""
    if not sys.platform.startswith("linux"):
        return Confinement.NONE
    _libc()
    where = work_root if work_root is not None and work_root.is_dir() else None
    with tempfile.TemporaryDirectory(prefix="mlbuffet-probe-", dir=where) as folder:
        if _works(lambda: _confine(Path(folder)), READ_ONLY_CHECK, folder):
            return Confinement.NAMESPACES
    if _works(_isolate_network):
        return Confinement.NETWORK
    return Confinement.NONE


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
