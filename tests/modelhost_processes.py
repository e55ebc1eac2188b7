"""Real modelhost processes (`python -m mlbuffet modelhost`), started as a user starts them."""

from __future__ import annotations

import asyncio
import contextlib
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
READY_TIMEOUT_S = 30
STOP_TIMEOUT_S = 15


class ModelhostProcess:
    def __init__(self, process: asyncio.subprocess.Process, node_id: str, log: Path) -> None:
        self.process = process
        self.node_id = node_id
        self.log = log

    async def stop(self) -> int:
        """SIGTERM (the host drains), then SIGKILL if it has not exited in STOP_TIMEOUT_S."""
        if self.process.returncode is None:
            with contextlib.suppress(ProcessLookupError):
                self.process.terminate()
            try:
                await asyncio.wait_for(self.process.wait(), STOP_TIMEOUT_S)
            except TimeoutError:
                self.process.kill()
                await self.process.wait()
        return self.process.returncode  # type: ignore[return-value]


async def start_modelhost_process(
    nats_url: str, node_id: str, log_dir: Path, *options: str
) -> ModelhostProcess:
    """Start a modelhost and wait for its ready line (it serves every model it loaded by then)."""
    log_path = log_dir / f"{node_id}.log"
    with log_path.open("wb") as log:
        process = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "mlbuffet", "modelhost",
            "--nats", nats_url, "--node-id", node_id, "--workers", "1", *options,
            cwd=REPO, stdin=asyncio.subprocess.DEVNULL,
            stdout=asyncio.subprocess.PIPE, stderr=log,
        )  # fmt: skip
    host = ModelhostProcess(process, node_id, log_path)
    assert process.stdout is not None
    try:
        line = await asyncio.wait_for(process.stdout.readline(), READY_TIMEOUT_S)
    except BaseException:
        await host.stop()
        raise
    assert f"modelhost {node_id} ready" in line.decode(), (line, log_path.read_text())
    return host
