"""A modelhost's memory budget: what each model cost to load, and which to give up for room.

No NATS and no onnxruntime here. A model's cost is measured, not guessed
from its file: the growth of the process's resident memory (RSS) across
loading and warming it, taken in the model set's one loader thread so that
two loads are never measured together. Freed memory is handed back to the
system (glibc's malloc_trim) before each measurement and after each
eviction, so the growth is the model's and not a reuse of memory freed
earlier, and an eviction shows in the RSS. Requests that run meanwhile may
allocate or free a little; the figure is floored at the file's size times the
model's sessions, as each onnxruntime session holds its own copy of every
weight in the file.

Before a model was ever loaded here, its cost is foreseen from its floor
(file size x sessions) times how far above their floors the models loaded
here so far came out; that decides how much room to make, and the measured
cost replaces it once the model is loaded (ModelMesh does the same: a
predicted size, corrected after the load).
"""

from __future__ import annotations

import ctypes
import ctypes.util
import logging
import time
from collections import OrderedDict
from collections.abc import Callable, Mapping
from typing import TypeVar

from mlbuffet.observe.heartbeat import rss_bytes
from mlbuffet.protocol.errors import ModelTooLargeError
from mlbuffet.protocol.sizes import format_size

log = logging.getLogger(__name__)

FRESH_S = 2.0
"""A model loaded for a waiting request is not evicted for this long, or until a request has
used it: evicting it before that request arrives would only make loads thrash."""

RATIO_LOADS = 16
"""Loads whose cost-to-floor ratios (their median) foresee the cost of a model new here."""

_T = TypeVar("_T")


def _malloc_trim() -> Callable[[int], int] | None:
    name = ctypes.util.find_library("c")
    try:
        trim = ctypes.CDLL(name).malloc_trim if name else None
    except (OSError, AttributeError):  # not glibc (musl, macOS): freed memory stays mapped
        return None
    return trim


_TRIM = _malloc_trim()


def release_freed_memory() -> None:
    """Return memory the process has freed to the system, where the C library can."""
    if _TRIM is not None:
        _TRIM(0)


def measure(build: Callable[[], _T], floor: int) -> tuple[_T, int]:
    """`build()` and the bytes of resident memory it took (at least `floor`).

    Call it only from the one thread that loads models, so that loads are
    measured one at a time.
    """
    release_freed_memory()
    before = rss_bytes()
    built = build()
    release_freed_memory()  # what the load used only while it ran is not the model's
    return built, max(rss_bytes() - before, floor)


class MemoryBudget:
    """This host's budget, its models in least-recently-used order, and what they cost before."""

    def __init__(self, budget: int) -> None:
        self.budget = budget
        self._recency: OrderedDict[str, None] = OrderedDict()
        """Models loaded here, least recently used first."""
        self._measured: dict[str, int] = {}
        """The last measured cost of each model's default, kept after an eviction: the best
        prediction of what loading it again will take."""
        self._fresh: dict[str, float] = {}
        """Models loaded and not yet used by a request: monotonic time of the load."""
        self._ratios: list[float] = []
        """Measured cost / floor of the latest loads: how far above its floor a model comes out."""
        self.evictions = 0

    def touch(self, model: str) -> None:
        """A request used `model`: now the most recently used (a dictionary move, no lock)."""
        if model in self._recency:
            self._recency.move_to_end(model)
            if self._fresh:
                self._fresh.pop(model, None)

    def loaded(self, model: str, cost: int, floor: int) -> None:
        """`model`'s default was loaded at `cost` bytes (at least `floor`); now the most recent."""
        self._recency[model] = None
        self._recency.move_to_end(model)
        self._measured[model] = cost
        if floor > 0:
            self._ratios = [*self._ratios[-(RATIO_LOADS - 1) :], cost / floor]

    def keep_fresh(self, model: str) -> None:
        """`model` was loaded for a request on its way: not evicted before it arrives."""
        self._fresh[model] = time.monotonic()

    def forget(self, model: str, *, evicted: bool = False) -> None:
        """`model` is no longer loaded: evicted for room, or gone from the registry."""
        self._recency.pop(model, None)
        self._fresh.pop(model, None)
        if evicted:
            self.evictions += 1
        else:
            self._measured.pop(model, None)

    def was_loaded(self, model: str) -> bool:
        """Whether `model` was evicted from here (and may be loaded again), not deleted."""
        return model in self._measured and model not in self._recency

    def measured(self, model: str) -> int | None:
        """The last measured cost of `model`'s default here, if it was ever loaded."""
        return self._measured.get(model)

    def predict(self, model: str, floor: int) -> int:
        """What loading `model` will likely cost: its last measured cost here, else its floor
        (file size x sessions) scaled as the latest loads were."""
        measured = self._measured.get(model)
        if measured is None:
            ratio = sorted(self._ratios)[len(self._ratios) // 2] if self._ratios else 1.0
            measured = int(floor * max(1.0, ratio))
        # A guess above the budget is only a guess: room for the whole budget, then measure.
        return min(measured, self.budget)

    def check_floor(self, model: str, file_size: int, sessions: int) -> None:
        """ModelTooLargeError, before any load, if the weights alone exceed the whole budget."""
        floor = file_size * sessions
        if floor > self.budget:
            raise self.too_large(
                model,
                f"needs at least {format_size(floor)} of memory loaded (its "
                f"{format_size(file_size)} file in each of its {sessions} sessions)",
                floor,
            )

    def check_measured(self, model: str, cost: int) -> None:
        """ModelTooLargeError if a load measured `cost` above the whole budget."""
        if cost > self.budget:
            raise self.too_large(model, f"took {format_size(cost)} of memory when loaded", cost)

    def too_large(self, model: str, what: str, cost: int) -> ModelTooLargeError:
        return ModelTooLargeError(
            f"model {model!r} {what}, more than this modelhost's whole memory budget of "
            f"{format_size(self.budget)} ({cost} > {self.budget} bytes); give a modelhost "
            "a larger --memory-budget, or the model fewer sessions"
        )

    def choose_evictions(
        self,
        model: str,
        need: int,
        costs: Mapping[str, int],
        *,
        surplus: Callable[[str], bool],
        force: bool,
        reserved: int = 0,
    ) -> list[str] | None:
        """Models to give up, least recently used first, so that `need` more bytes fit.

        Models loaded for a request less than FRESH_S ago and not used yet are kept. Surplus
        models (held by more hosts than their min_replicas ask, as far as this
        host can tell) go first; the others only with `force` (a request is
        waiting: the model asked for now is more recently used than any of them).
        `reserved` bytes are promised to loads under way. None if even that
        would not make room. Nothing is evicted here.
        """
        free = self.budget - sum(costs.values()) - reserved
        chosen: list[str] = []
        now = time.monotonic()
        candidates = [
            m
            for m in self._recency
            if m != model and m in costs and now - self._fresh.get(m, -FRESH_S) >= FRESH_S
        ]
        tiers = [[m for m in candidates if surplus(m)]]
        if force:
            tiers.append([m for m in candidates if not surplus(m)])
        for tier in tiers:
            for held in tier:
                if free >= need:
                    return chosen
                chosen.append(held)
                free += costs[held]
        return chosen if free >= need else None
