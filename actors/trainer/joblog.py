"""A job's log: lines kept for the final log object and published in batches as they come.

Writers (the backend reading a child's output) call `write` synchronously;
a flusher task publishes what accumulated as one JobEvent every
FLUSH_INTERVAL_S, so a chatty script costs a few messages a second, not one
per line. The log is capped: past MAX_LOG_BYTES further lines are dropped
with one note saying so.
"""

from __future__ import annotations

import asyncio
import logging
import time

from mlbuffet.protocol.jobs import JobEvent
from mlbuffet.training import JobStore

log = logging.getLogger(__name__)

FLUSH_INTERVAL_S = 0.2
MAX_BATCH_LINES = 500
MAX_LOG_BYTES = 4 * 1024 * 1024


class JobLog:
    def __init__(self, store: JobStore, job: str, node: str) -> None:
        self.store = store
        self.job = job
        self.node = node
        self.lines: list[str] = []
        self._published = 0
        self._bytes = 0
        self._truncated = False
        self._wake = asyncio.Event()
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        self._task = asyncio.create_task(self._flush_forever(), name=f"job-log-{self.job}")

    def write(self, line: str) -> None:
        if self._truncated:
            return
        self._bytes += len(line) + 1
        if self._bytes > MAX_LOG_BYTES:
            self._truncated = True
            line = f"[trainer] the log is over {MAX_LOG_BYTES} bytes; further lines are dropped"
        self.lines.append(line)
        self._wake.set()

    async def _flush_forever(self) -> None:
        while True:
            await self._wake.wait()
            self._wake.clear()
            await self.flush()
            await asyncio.sleep(FLUSH_INTERVAL_S)

    async def flush(self) -> None:
        while self._published < len(self.lines):
            start = self._published
            batch = tuple(self.lines[start : start + MAX_BATCH_LINES])
            event = JobEvent(
                job=self.job,
                kind=JobEvent.LOG,
                node=self.node,
                at=time.time(),
                seq=start,
                lines=batch,
            )
            try:
                await self.store.publish(event)
            except Exception:
                # The final log object still gets every line; only live readers miss these.
                log.warning("could not publish log lines of job %s", self.job, exc_info=True)
            self._published = start + len(batch)

    async def close(self) -> None:
        """Publish what is left and store the whole log (best effort)."""
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)
        await self.flush()
        try:
            await self.store.put_log(self.job, self.text())
        except Exception:
            log.warning("could not store the log of job %s", self.job, exc_info=True)

    def text(self) -> bytes:
        return "".join(f"{line}\n" for line in self.lines).encode()
