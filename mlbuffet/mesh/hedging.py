"""When to send an inference request again: hedge delays, the retry budget, the counts.

A modelhost that is killed mid-request never answers: silence is the only
signal. So a request that has no answer after a *hedge delay* is sent again
(the queue group most likely hands the copy to another host) while the first
stays outstanding, and the first answer wins ("The Tail at Scale"; Envoy's
hedging). Inference is idempotent, so a duplicate costs only compute.

The delay follows the model: `max(floor, factor x recent p95)` of the latency
seen on that subject, so a 50 ms CNN is hedged later than a 1 ms iris. The
extra load is bounded by a retry budget (Finagle's RetryBudget): every request
deposits `ratio` of a token, every hedge or retry takes a whole one, and a
reserve of `min_per_s` tokens a second (at most `burst`) lets a quiet caller
ride out a host's death. Under overload the budget runs dry and hedging stops
long before it could double the load. The request loop itself lives in
`mlbuffet.mesh.request`.

A host that is stopped (SIGSTOP), not dead, keeps its subscriptions until
nats-server drops it for unanswered PINGs, so every copy of a request can land
on it. A request whose copies all stay silent gets one last copy
`last_copy_after_s` after the previous one: by then the server has dropped
the stopped host, and the copy goes to a live one.
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Mapping
from dataclasses import dataclass, field

from mlbuffet.config import ConfigError, env_float, env_int
from mlbuffet.natsd.server import STOPPED_CLIENT_DROPPED_S

LATENCY_SAMPLES = 64
"""Latencies kept per subject; the p95 of these sets the hedge delay."""
RECOMPUTE_EVERY = 16
"""Recompute the p95 once per this many samples (after the first ones): the hot path appends."""
MAX_SUBJECTS = 1024
"""Subjects tracked; beyond this the tracker forgets them all and starts again."""


@dataclass(frozen=True, slots=True)
class HedgeConfig:
    """How eagerly a caller hedges and retries; `enabled=False` sends each request once."""

    enabled: bool = True
    floor_s: float = 0.25
    """Never hedge sooner than this: below it, a silent host is more likely busy than dead."""
    factor: float = 3.0
    """Hedge after `factor` times the recent p95 latency of the subject (when above the floor)."""
    max_attempts: int = 3
    """Copies of one request sent at the hedge delays (the first one included); a last one may
    follow much later (`last_copy_after_s`)."""
    budget_ratio: float = 0.1
    """Hedges and retries allowed per request, over time (0.1: one in ten)."""
    budget_burst: float = 50.0
    """Tokens the budget holds at most (and starts with): hedges allowed in a burst. It must
    cover the requests lost at once when a host dies (its queue), or some of them time out."""
    budget_min_per_s: float = 5.0
    """Tokens added every second whatever the traffic, so a quiet caller can still hedge."""
    last_copy_after_s: float = STOPPED_CLIENT_DROPPED_S
    """When `max_attempts` copies are all unanswered this long after the last one, send one
    more (a budget token, counted as a hedge): how long nats-server takes to drop a stopped
    host, whose copies are lost. 0: never."""

    def __post_init__(self) -> None:
        if not self.floor_s > 0:
            raise ConfigError("--hedge-after must be a positive number of seconds")
        if not self.factor > 0:
            raise ConfigError("the hedge factor must be positive")
        if self.max_attempts < 1:
            raise ConfigError("--hedge-attempts must be at least 1")
        if self.budget_ratio < 0 or self.budget_burst < 0 or self.budget_min_per_s < 0:
            raise ConfigError("--hedge-budget must not be negative")
        if not self.last_copy_after_s >= 0:
            raise ConfigError("the last copy's delay must not be negative")


class LatencyTracker:
    """Recent latencies of one subject and the hedge delay they give; cheap to feed."""

    __slots__ = ("_factor", "_fed", "_floor_s", "_next", "_samples", "delay_s")

    def __init__(self, floor_s: float, factor: float) -> None:
        self._floor_s = floor_s
        self._factor = factor
        self._samples: list[float] = []
        self._next = 0
        self._fed = 0
        self.delay_s = floor_s
        """When to send a copy of a request that has no answer yet."""

    def record(self, latency_s: float) -> None:
        if len(self._samples) < LATENCY_SAMPLES:
            self._samples.append(latency_s)
        else:
            self._samples[self._next] = latency_s
            self._next = (self._next + 1) % LATENCY_SAMPLES
        self._fed += 1
        # Every sample at first (a slow model must not be hedged at the floor for long),
        # then every RECOMPUTE_EVERY.
        if self._fed <= RECOMPUTE_EVERY or self._fed % RECOMPUTE_EVERY == 0:
            ordered = sorted(self._samples)
            p95 = ordered[min(len(ordered) - 1, int(len(ordered) * 0.95))]
            self.delay_s = max(self._floor_s, self._factor * p95)


class RetryBudget:
    """Tokens for hedges and retries: `ratio` per request, `min_per_s` a second, at most `burst`."""

    __slots__ = ("_burst", "_min_per_s", "_ratio", "_refilled", "_tokens")

    def __init__(self, ratio: float, burst: float, min_per_s: float) -> None:
        self._ratio = ratio
        self._burst = burst
        self._min_per_s = min_per_s
        self._tokens = burst
        self._refilled = time.monotonic()

    def deposit(self) -> None:
        """One request was sent."""
        tokens = self._tokens + self._ratio
        self._tokens = tokens if tokens < self._burst else self._burst

    def withdraw(self) -> bool:
        """Take a token for one hedge or retry; False if the budget is spent."""
        now = time.monotonic()
        self._tokens = min(self._burst, self._tokens + (now - self._refilled) * self._min_per_s)
        self._refilled = now
        if self._tokens < 1:
            return False
        self._tokens -= 1
        return True


@dataclass
class HedgeCounts:
    """What hedging did, since start: for /metrics, logs and tests."""

    requests: int = 0
    hedged: int = 0
    """Copies sent because no answer came within the hedge delay."""
    hedge_wins: int = 0
    """Requests answered by a hedge rather than by an earlier copy."""
    retried: int = 0
    """Copies sent because a host answered 503 (overloaded, not ready)."""
    refused: int = 0
    """Hedges or retries the budget did not allow."""

    def as_dict(self) -> dict[str, int]:
        return {
            "requests": self.requests,
            "hedged": self.hedged,
            "hedge_wins": self.hedge_wins,
            "retried": self.retried,
            "refused": self.refused,
        }


@dataclass
class Hedging:
    """One caller's hedging state (a gateway's, a client's): config, latencies, budget, counts."""

    config: HedgeConfig = field(default_factory=HedgeConfig)
    counts: HedgeCounts = field(default_factory=HedgeCounts)
    budget: RetryBudget = field(init=False)
    _trackers: dict[str, LatencyTracker] = field(init=False, default_factory=dict)

    def __post_init__(self) -> None:
        config = self.config
        self.budget = RetryBudget(config.budget_ratio, config.budget_burst, config.budget_min_per_s)

    def tracker(self, subject: str) -> LatencyTracker:
        tracker = self._trackers.get(subject)
        if tracker is None:
            if len(self._trackers) >= MAX_SUBJECTS:
                self._trackers.clear()
            tracker = LatencyTracker(self.config.floor_s, self.config.factor)
            self._trackers[subject] = tracker
        return tracker


def add_hedge_arguments(parser: argparse.ArgumentParser, environ: Mapping[str, str]) -> None:
    """--hedge-after, --hedge-attempts, --hedge-budget (and their MLBUFFET_HEDGE_* variables)."""
    defaults = HedgeConfig()
    parser.add_argument(
        "--hedge-after",
        type=float,
        metavar="SECONDS",
        default=env_float(environ, "HEDGE_AFTER", defaults.floor_s),
        help="send an unanswered inference request again after at least this long, more for "
        f"models slower than this/{defaults.factor:g} (default %(default)s)",
    )
    parser.add_argument(
        "--hedge-attempts",
        type=int,
        metavar="N",
        default=env_int(environ, "HEDGE_ATTEMPTS", defaults.max_attempts),
        help="copies of one inference request sent at most; 1 turns hedging and retries off "
        "(default %(default)s)",
    )
    parser.add_argument(
        "--hedge-budget",
        type=float,
        metavar="RATIO",
        default=env_float(environ, "HEDGE_BUDGET", defaults.budget_ratio),
        help="hedges and retries allowed per request, over time (default %(default)s)",
    )


def hedge_config_from(args: argparse.Namespace) -> HedgeConfig:
    return HedgeConfig(
        enabled=args.hedge_attempts > 1,
        floor_s=args.hedge_after,
        max_attempts=max(1, args.hedge_attempts),
        budget_ratio=args.hedge_budget,
    )
