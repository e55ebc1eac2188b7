"""The cluster view's bookkeeping on a fake clock: up, down, back, rates, models."""

from __future__ import annotations

from actors.metrics.cluster import ClusterView
from mlbuffet.observe.histograms import SECONDS_BUCKETS, BucketHistogram, merged, summary
from mlbuffet.protocol.cluster import Heartbeat, LoadedModel
from mlbuffet.protocol.events import NodeEvent


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def histogram(counts: list[int], bounds=(0.001, 0.01, 0.1)) -> dict:
    values = {
        "bounds": list(bounds),
        "counts": counts,
        "count": sum(counts),
        "sum": 0.01 * sum(counts),
    }
    return values


def beat(
    node: str, at: float, success: int = 0, role: str = "modelhost", pid: int = 1
) -> Heartbeat:
    stats = {
        "success": success,
        "failure": 0,
        "latency": histogram([0, success, 0, 0]),
        "queue": histogram([success, 0, 0, 0]),
        "compute": histogram([success, 0, 0, 0]),
        "batch_size": histogram([success, 0, 0], bounds=(1, 2)),
    }
    return Heartbeat(
        node=node,
        role=role,
        host="h",
        pid=pid,
        version="0.1.0",
        started_at=0.0,
        at=at,
        interval_s=1.0,
        cpu_percent=1.0,
        rss_bytes=1 << 20,
        in_flight=0,
        models=(LoadedModel("m", 1),) if role == "modelhost" else (),
        counters={"models": {"m:1": stats}} if role == "modelhost" else {},
    )


def test_a_new_node_is_up_a_silent_one_down_and_a_returning_one_up_again():
    clock = Clock()
    view = ClusterView(down_after=3, clock=clock)
    event = view.observe(beat("a", 1.0))
    assert event is not None and (event.event, event.node) == (NodeEvent.UP, "a")
    assert view.observe(beat("a", 2.0)) is None
    clock.now += 3.0  # exactly 3 intervals: not yet
    assert view.sweep() == []
    clock.now += 0.01
    [down] = view.sweep()
    assert (down.event, down.node, down.role, down.last_seen) == (
        NodeEvent.DOWN,
        "a",
        "modelhost",
        2.0,
    )
    assert view.sweep() == []  # said once
    back = view.observe(beat("a", 10.0))
    assert back is not None and back.event == NodeEvent.UP
    assert view.status("me").nodes[0]["state"] == "up"


def test_a_node_down_for_long_is_forgotten():
    clock = Clock()
    view = ClusterView(down_after=3, forget_after_s=60, clock=clock)
    view.observe(beat("a", 1.0))
    clock.now += 4
    assert len(view.sweep()) == 1
    clock.now += 61
    view.sweep()
    assert view.nodes == {}


def test_models_sum_over_nodes_with_rates_and_percentiles():
    clock = Clock()
    view = ClusterView(clock=clock)
    view.observe(beat("a", 0.0, success=0))
    view.observe(beat("b", 0.0, success=10, pid=2))
    view.observe(beat("a", 2.0, success=20))
    view.observe(beat("b", 2.0, success=30, pid=2))
    view.observe(beat("g", 2.0, role="gateway"))
    status = view.status("me")
    [model] = status.models
    assert model["model"] == "m" and model["version"] == 1
    assert model["nodes"] == ["a", "b"]
    assert model["success"] == 50
    assert model["requests_per_s"] == 20.0  # (20 - 0) / 2 + (30 - 10) / 2
    assert 0.001 <= model["p50_s"] <= 0.01
    nodes = {n["node"]: n for n in status.nodes}
    assert nodes["a"]["requests"] == 20 and nodes["a"]["requests_per_s"] == 10.0
    assert nodes["g"]["role"] == "gateway" and nodes["g"]["models"] == []


def test_a_restarted_process_under_the_same_node_id_does_not_give_negative_rates():
    view = ClusterView(clock=Clock())
    view.observe(beat("a", 0.0, success=100, pid=1))
    view.observe(beat("a", 1.0, success=3, pid=2))
    assert view.status("me").nodes[0]["requests_per_s"] == 0.0


def test_late_heartbeats_are_ignored():
    view = ClusterView(clock=Clock())
    view.observe(beat("a", 5.0, success=5))
    view.observe(beat("a", 4.0, success=4))
    assert view.nodes["a"].beat.at == 5.0


def test_histogram_quantiles_interpolate_inside_buckets():
    h = BucketHistogram.from_wire(histogram([0, 10, 0, 0]))
    assert h is not None
    assert h.quantile(0.5) == 0.001 + (0.01 - 0.001) * 0.5
    assert h.cumulative() == [(0.001, 0), (0.01, 10), (0.1, 10), (float("inf"), 10)]
    over = BucketHistogram.from_wire(histogram([0, 0, 0, 4]))
    assert over is not None and over.quantile(0.99) == 0.1
    assert summary(merged([])) == {"count": 0, "mean_s": None, "p50_s": None, "p99_s": None}
    total = merged(
        [histogram([1, 0, 0, 0]), histogram([0, 0, 1, 0]), {"bounds": [1], "counts": [1, 1]}]
    )
    assert total.count == 2  # other bounds do not merge, bad ones are skipped
    assert BucketHistogram.from_wire({"bounds": [1], "counts": [1]}) is None


def test_a_recorded_histogram_goes_over_the_wire_and_merges_exactly():
    a, b = BucketHistogram(SECONDS_BUCKETS), BucketHistogram(SECONDS_BUCKETS)
    for value in (0.00005, 0.0003, 0.0003, 7.0, 60.0):
        a.observe(value)
    b.observe(0.0003)
    total = merged([a.to_wire(), b.to_wire()])
    assert total.bounds == SECONDS_BUCKETS and total.count == 6
    assert total.sum == a.sum + b.sum
    # 0.0003 falls in the bucket up to 0.0005; 60 s beyond the last bound, in +Inf.
    assert total.counts[SECONDS_BUCKETS.index(0.0005)] == 3
    assert total.counts[-1] == 1 and sum(total.counts) == 6
