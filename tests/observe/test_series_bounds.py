"""The metrics actor's samples: rates over each heartbeat interval, and a reply that fits NATS."""

from __future__ import annotations

from actors.metrics.cluster import ClusterView
from actors.metrics.series import ClusterSamples
from mlbuffet.protocol.cluster import ClusterSeries, Heartbeat, LoadedModel
from mlbuffet.protocol.wire import unpack

NODES = 40


def beat(node: str, at: float, served: int, refused: int = 0, pid: int = 1) -> Heartbeat:
    """A modelhost's heartbeat as it sends it: counters since its start."""
    return Heartbeat(
        node=node, role="modelhost", host="h", pid=pid, version="t", started_at=0.0, at=at,
        interval_s=2.0, cpu_percent=10.0, rss_bytes=100 << 20, in_flight=0,
        models=(LoadedModel("m", 1),),
        counters={"models": {"m:1": {"success": served, "failure": 0}}, "refused": refused, "queued": 0},
    )  # fmt: skip


def test_rates_are_over_the_last_interval_and_restart_with_the_process():
    view, samples = ClusterView(), ClusterSamples(2.0)
    for state in ((0.0, 0, 0), (2.0, 100, 4), (4.0, 300, 4)):
        view.observe(beat("n1", *state))
        samples.observe(beat("n1", *state))
    sample = samples.take(view)
    assert sample.models["m:1"]["requests_per_s"] == 100.0  # (300 - 100) / 2 s, not since start
    assert sample.nodes["n1"]["refused_per_s"] == 0.0
    # A new process under the same node id: its counters started again, no rate from it yet.
    restarted = beat("n1", 6.0, 5, pid=2)
    view.observe(restarted)
    samples.observe(restarted)
    assert samples.take(view).models == {}


def test_a_large_clusters_series_is_cut_to_fit_the_servers_max_payload():
    view, samples = ClusterView(), ClusterSamples(2.0)
    for tick in range(200):
        for n in range(NODES):
            heartbeat = beat(f"node-{n}", tick * 2.0, tick * 10)
            view.observe(heartbeat)
            samples.observe(heartbeat)
        samples.take(view)
    whole = samples.series("metrics-1")
    assert len(whole.times) == 200
    payload = samples.packed_series("metrics-1", 0.0, 64 * 1024)
    assert len(payload) <= 64 * 1024
    cut = unpack(payload, ClusterSeries.from_dict)
    # The newest samples are kept, as many as fit.
    assert 0 < len(cut.times) < 200
    assert cut.times == whole.times[-len(cut.times) :]
