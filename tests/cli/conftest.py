"""Running `mlbuffet up` (and `mlbuffet nats`) as a user does: real processes, ephemeral ports.

Each process writes its output to files under the test's tmp_path, read by
polling, so a process that prints a lot never blocks on a full pipe. Every
wait is bounded, and teardown kills whatever a test left running: the
process itself and every descendant seen while it ran.
"""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
UP_READY = re.compile(r"^MLBuffet is up in ([\d.]+)s: REST (\S+) NATS (\S+)", re.MULTILINE)
READY_TIMEOUT_S = 45.0
STOP_TIMEOUT_S = 30.0


def clean_environ() -> dict[str, str]:
    """The test runner's environment without MLBUFFET_* settings that would change defaults."""
    return {k: v for k, v in os.environ.items() if not k.startswith("MLBUFFET_")}


def child_pids(pid: int) -> set[int]:
    """Direct children of `pid`, from /proc (no psutil)."""
    found: set[int] = set()
    try:
        tasks = list(Path(f"/proc/{pid}/task").glob("*/children"))
    except OSError:
        return found  # the process ended while we looked
    for children in tasks:
        try:
            found.update(int(p) for p in children.read_text().split())
        except OSError:
            continue  # the thread or the process just ended
    return found


def descendants(pid: int) -> set[int]:
    seen: set[int] = set()
    todo = [pid]
    while todo:
        for child in child_pids(todo.pop()):
            if child not in seen:
                seen.add(child)
                todo.append(child)
    return seen


def alive(pid: int) -> bool:
    """True while `pid` runs; a zombie (dead, not yet reaped) counts as gone."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat.rsplit(")", 1)[1].split()[0] not in ("Z", "X")


def command_of(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode()
    except OSError:
        return ""


def wait_until(check: Callable[[], bool], timeout_s: float, what: str) -> None:
    deadline = time.monotonic() + timeout_s
    while not check():
        if time.monotonic() > deadline:
            pytest.fail(f"{what}: not within {timeout_s}s")
        time.sleep(0.05)


def wait_gone(pids: set[int], timeout_s: float, what: str) -> None:
    """Fail unless every process in `pids` has ended within `timeout_s`."""
    deadline = time.monotonic() + timeout_s
    while left := {pid for pid in pids if alive(pid)}:
        if time.monotonic() > deadline:
            running = "; ".join(f"{pid}: {command_of(pid)[:120]}" for pid in sorted(left))
            pytest.fail(f"{what}: still running after {timeout_s}s: {running}")
        time.sleep(0.05)


@dataclass
class Proc:
    """One `python -m mlbuffet ...` process with its output in files."""

    process: subprocess.Popen[bytes]
    out_path: Path
    err_path: Path
    started_at: float
    seen: set[int] = field(default_factory=set)
    """Every descendant pid seen so far (teardown makes sure they are gone)."""

    @property
    def pid(self) -> int:
        return self.process.pid

    def out(self) -> str:
        return self.out_path.read_text(errors="replace")

    def err(self) -> str:
        return self.err_path.read_text(errors="replace")

    def descendants(self) -> set[int]:
        found = descendants(self.pid)
        self.seen |= found
        return found

    def wait_for_output(self, pattern: re.Pattern[str], timeout_s: float) -> re.Match[str]:
        """The first match of `pattern` in stdout; fails the test if the process exits first."""
        deadline = time.monotonic() + timeout_s
        while True:
            self.descendants()
            if match := pattern.search(self.out()):
                return match
            if self.process.poll() is not None:
                pytest.fail(
                    f"exited with {self.process.returncode} before {pattern.pattern!r}\n"
                    f"--- stdout\n{self.out()}\n--- stderr\n{self.err()}"
                )
            if time.monotonic() > deadline:
                pytest.fail(
                    f"no {pattern.pattern!r} within {timeout_s}s\n--- stdout\n{self.out()}\n"
                    f"--- stderr\n{self.err()}"
                )
            time.sleep(0.02)

    def signal(self, signum: int) -> None:
        if self.process.poll() is None:
            self.process.send_signal(signum)

    def wait(self, timeout_s: float = STOP_TIMEOUT_S) -> int:
        """Wait for the exit code, noting every descendant that shows up meanwhile."""
        deadline = time.monotonic() + timeout_s
        while (code := self.process.poll()) is None:
            self.descendants()
            if time.monotonic() > deadline:
                pytest.fail(f"still running {timeout_s}s later\n--- stdout\n{self.out()}")
            time.sleep(0.02)
        return code

    def kill_everything(self) -> None:
        """Teardown: nothing a test started survives it, whatever the test did."""
        if self.process.poll() is None:
            self.descendants()
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(STOP_TIMEOUT_S)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        for pid in self.seen:
            if alive(pid):
                try:
                    os.kill(pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass


@dataclass
class Up(Proc):
    """A running `mlbuffet up`, once it said it is up."""

    rest: str = ""
    nats: str = ""
    reported_s: float = 0.0
    ready_s: float = 0.0
    """Seconds from starting the process to its ready line, as the test saw it."""

    def pid_of(self, child: str) -> int:
        """The pid `up` reported for `child` (gateway, modelhost-1, ...), latest report first."""
        pattern = {
            "gateway": r"REST API .*\(gateway, pid (\d+)\)",
            "nats": r"embedded nats-server, JetStream on, pid (\d+)",
        }.get(child, rf"{re.escape(child)} \(pid (\d+)\)")
        back = re.findall(rf"\[up\] {re.escape(child)} is back \(pid (\d+)\)", self.out())
        if back:
            return int(back[-1])
        match = re.search(pattern, self.out())
        assert match, f"no pid of {child} in\n{self.out()}"
        return int(match.group(1))


Spawn = Callable[..., Proc]
StartUp = Callable[..., Up]


def _popen(tmp_path: Path, name: str, args: list[str], env: dict[str, str] | None = None) -> Proc:
    out_path = tmp_path / f"{name}.out"
    err_path = tmp_path / f"{name}.err"
    with out_path.open("wb") as out, err_path.open("wb") as err:
        process = subprocess.Popen(
            [sys.executable, "-m", "mlbuffet", *args],
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=err,
            cwd=tmp_path,
            env={**clean_environ(), **(env or {})},
        )
    return Proc(process, out_path, err_path, time.monotonic())


@pytest.fixture
def spawn(tmp_path: Path) -> Iterator[Spawn]:
    """Start `python -m mlbuffet <args>` in tmp_path; it is stopped at teardown."""
    started: list[Proc] = []
    counter = iter(range(1000))

    def start(*args: str, env: dict[str, str] | None = None) -> Proc:
        proc = _popen(tmp_path, f"{args[0]}-{next(counter)}", list(args), env)
        started.append(proc)
        return proc

    yield start
    for proc in started:
        proc.kill_everything()


@pytest.fixture
def start_up(tmp_path: Path) -> Iterator[StartUp]:
    """Start `mlbuffet up` on ephemeral ports and wait for its ready line."""
    started: list[Up] = []
    counter = iter(range(1000))

    def start(*args: str, data_dir: Path | None = None, env: dict[str, str] | None = None) -> Up:
        data = data_dir or tmp_path / "data"
        argv = [
            "up",
            "--nats-port",
            "0",
            "--port",
            "0",
            "--metrics-port",
            "0",
            "--data-dir",
            str(data),
            *args,
        ]
        proc = _popen(tmp_path, f"up-{next(counter)}", argv, env)
        up = Up(proc.process, proc.out_path, proc.err_path, proc.started_at)
        started.append(up)
        match = up.wait_for_output(UP_READY, READY_TIMEOUT_S)
        up.ready_s = time.monotonic() - up.started_at
        up.reported_s = float(match.group(1))
        up.rest, up.nats = match.group(2), match.group(3)
        assert up.rest.startswith("http://127.0.0.1:"), up.rest
        return up

    yield start
    for up in started:
        up.kill_everything()
