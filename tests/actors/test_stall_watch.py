"""StallWatch's rule on its own: stalled after `limit_s` of observed silence with runs pending.

Ticks are given explicit times here so each rule is checked exactly; the watch on a real
host with a hung compute thread is tests/faults/test_stuck_modelhost.py.
"""

from __future__ import annotations

import asyncio

import pytest

from actors.modelhost.__main__ import parse_args as modelhost_args
from actors.modelhost.batching import RequestExpired
from actors.modelhost.stall import MAX_TICK_S, STALL_FACTOR, Change, StallWatch
from mlbuffet.config import ConfigError


def ticks(watch: StallWatch, start: float, seconds: float, step: float = 0.1) -> list[Change]:
    """Tick every `step` from `start` for `seconds`; the changes seen."""
    changes = []
    for i in range(round(seconds / step) + 1):
        change = watch.tick(start + i * step)
        if change is not None:
            changes.append(change)
    return changes


def test_a_host_with_pending_runs_and_no_finished_one_stalls_after_the_floor():
    watch = StallWatch(floor_s=2.0)
    with watch.run():
        assert ticks(watch, 0.0, 1.9) == []
        assert not watch.stalled
        assert ticks(watch, 2.0, 0.3) == [Change.STALLED]
    # The hung run ended (it finished, late): the host recovers at the next tick.
    assert watch.tick(3.0) is Change.RECOVERED
    assert not watch.stalled
    assert watch.stalls == 1
    assert watch.limit_s == 2.0  # the hung run's length is not taken for the model's pace


def test_an_idle_host_never_stalls():
    watch = StallWatch(floor_s=1.0)
    assert ticks(watch, 0.0, 10.0) == []


def test_finished_runs_keep_a_busy_host_from_stalling():
    watch = StallWatch(floor_s=1.0)
    with watch.run():  # one long run pending throughout
        for second in range(10):
            with watch.run():
                pass  # another finishes every second
            assert ticks(watch, second, 0.8) == []  # 0.9 s of silence at most


def test_a_failed_run_counts_as_finished_but_an_expired_or_cancelled_wait_does_not():
    watch = StallWatch(floor_s=1.0)
    with watch.run():
        ticks(watch, 0.0, 0.8)
        with pytest.raises(ValueError), watch.run():
            raise ValueError("onnxruntime said no")
        assert watch.silent_s == 0.0  # onnxruntime answered: it is not hung
        for unanswered in (RequestExpired(), asyncio.CancelledError()):
            with pytest.raises(type(unanswered)), watch.run():
                raise unanswered
        assert ticks(watch, 1.0, 1.2) == [Change.STALLED]


def test_the_limit_follows_the_slowest_recent_run():
    watch = StallWatch(floor_s=1.0)
    watch.record(2.0)  # a model whose warm-up took 2 s
    assert watch.limit_s == STALL_FACTOR * 2.0
    with watch.run():
        assert ticks(watch, 0.0, STALL_FACTOR * 2.0 - 0.2) == []
        assert ticks(watch, 10.0, 0.5, step=0.1) == [Change.STALLED]


def test_time_the_loop_did_not_see_counts_one_short_tick():
    """A SIGSTOPped host resumed after a minute must not call its paused runs hung."""
    watch = StallWatch(floor_s=1.0)
    with watch.run():
        watch.tick(0.0)
        assert watch.tick(60.0) is None
        assert watch.silent_s == pytest.approx(MAX_TICK_S)


def test_floor_zero_turns_the_watch_off():
    watch = StallWatch(floor_s=0.0)
    with watch.run():
        assert ticks(watch, 0.0, 30.0) == []


def test_stall_after_comes_from_the_flag_or_the_environment_and_a_bad_one_is_named():
    config, _ = modelhost_args(["--stall-after", "5"], {})
    assert config.stall_after_s == 5.0
    config, _ = modelhost_args([], {"MLBUFFET_MODELHOST_STALL_AFTER": "0"})
    assert config.stall_after_s == 0.0  # off
    for bad in ("-1", "nan", "inf"):
        with pytest.raises(ConfigError, match="--stall-after"):
            modelhost_args(["--stall-after", bad], {})
