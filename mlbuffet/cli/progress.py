"""Progress of long work on a terminal: a one-line bar for bytes sent, redrawn in place.

Only when the output is a terminal (a pipe or --json gets nothing extra), and
at most every REDRAW_S, so a fast upload does not spend its time printing.
`update` may be called from another thread (aiohttp reads a file to send in
its executor), hence the lock.
"""

from __future__ import annotations

import io
import threading
import time
from collections.abc import Callable
from typing import BinaryIO, TextIO

REDRAW_S = 0.1
BAR_WIDTH = 30


def _size(n: float) -> str:
    for unit, scale in (("GiB", 1 << 30), ("MiB", 1 << 20), ("KiB", 1 << 10)):
        if n >= scale:
            return f"{n / scale:.1f} {unit}"
    return f"{n:.0f} B"


class ProgressBar:
    """`[#####.....]  42%  12.3 MiB / 29.1 MiB  8.2 MiB/s` on one line of `stream`."""

    def __init__(
        self, label: str, total: int, stream: TextIO, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self.label = label
        self.total = max(1, total)
        self.stream = stream
        self.clock = clock
        self.started = clock()
        self.drawn_at = -REDRAW_S
        self.done = 0
        self._lock = threading.Lock()

    def line(self) -> str:
        fraction = min(1.0, self.done / self.total)
        filled = round(fraction * BAR_WIDTH)
        rate = self.done / max(1e-6, self.clock() - self.started)
        return (
            f"{self.label} [{'#' * filled}{'.' * (BAR_WIDTH - filled)}] {fraction:4.0%}  "
            f"{_size(self.done)} / {_size(self.total)}  {_size(rate)}/s"
        )

    def update(self, done: int) -> None:
        with self._lock:
            self.done = done
            now = self.clock()
            if now - self.drawn_at < REDRAW_S and done < self.total:
                return
            self.drawn_at = now
            self.stream.write("\r" + self.line())
            self.stream.flush()

    def finish(self) -> None:
        with self._lock:
            self.stream.write("\r" + self.line() + "\n")
            self.stream.flush()


class CountingReader(io.BufferedIOBase):
    """A binary file that reports how many bytes were read from it (seekable, so a
    sender can still size it)."""

    def __init__(self, raw: BinaryIO, report: Callable[[int], None]) -> None:
        super().__init__()
        self._raw = raw
        self._report = report
        self.read_bytes = 0

    def read(self, size: int | None = -1) -> bytes:
        data = self._raw.read(-1 if size is None else size)
        self.read_bytes += len(data)
        self._report(self.read_bytes)
        return data

    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return True

    def seek(self, offset: int, whence: int = io.SEEK_SET) -> int:
        position = self._raw.seek(offset, whence)
        self.read_bytes = position
        return position

    def tell(self) -> int:
        return self._raw.tell()

    def fileno(self) -> int:
        return self._raw.fileno()
