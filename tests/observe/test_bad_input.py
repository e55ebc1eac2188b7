"""Bad heartbeats and bad settings: clear errors, and no actor dies of them."""

from __future__ import annotations

import msgpack
import pytest

from mlbuffet.cli.up_config import UpConfig, parse_args
from mlbuffet.config import ConfigError
from mlbuffet.observe.cluster_status import cluster_status
from mlbuffet.protocol.cluster import Heartbeat
from mlbuffet.protocol.errors import BadRequestError
from mlbuffet.protocol.events import NodeEvent
from tests.conftest import eventually
from tests.observe.conftest import scrape, value

GOOD = {
    "type": Heartbeat.TYPE,
    "node": "n1",
    "role": "modelhost",
    "host": "h",
    "pid": 1,
    "version": "0.1.0",
    "started_at": 1.0,
    "at": 2.0,
    "interval_s": 2.0,
    "cpu_percent": 0.5,
    "rss_bytes": 1000,
    "in_flight": 0,
}


@pytest.mark.parametrize(
    ("change", "words"),
    [
        ({"type": "mlbuffet.heartbeat.v9"}, "is not"),
        ({"pid": "one"}, "'pid' has the wrong type"),
        ({"in_flight": True}, "'in_flight' has the wrong type"),
        ({"models": [{"model": "m"}]}, "no 'version'"),
        ({"models": ["m:1"]}, "must be a map"),
        ({"counters": [1]}, "'counters' has the wrong type"),
    ],
)
def test_a_bad_heartbeat_is_refused_with_what_is_wrong(change, words):
    with pytest.raises(BadRequestError, match=words):
        Heartbeat.from_dict({**GOOD, **change})


def test_a_heartbeat_survives_the_wire_unchanged():
    beat = Heartbeat.from_dict({**GOOD, "models": [{"model": "m", "version": 3}]})
    assert Heartbeat.from_dict(beat.to_dict()) == beat
    event = NodeEvent(NodeEvent.DOWN, "n1", "modelhost", 5.0, 2.0)
    assert NodeEvent.from_dict(event.to_dict()) == event


async def test_the_metrics_actor_ignores_bad_heartbeats_and_keeps_serving(nc, start_metrics):
    metrics = await start_metrics()
    for payload in (
        b"\xc1 not msgpack",
        msgpack.packb([1, 2, 3]),
        msgpack.packb({**GOOD, "pid": "x"}),
        msgpack.packb({**GOOD, "counters": {"models": {"m:1": {"latency": "nope"}}}}),
    ):
        await nc.publish("mlbuffet.heartbeat.modelhost.n1", payload)
    await nc.flush()

    async def only_the_valid_one() -> bool:
        status = await cluster_status(nc)
        nodes = {n["node"] for n in status.nodes}
        return nodes == {metrics.node_id, "n1"}

    # The last one is a valid heartbeat whose histogram is junk: the node counts, the junk not.
    await eventually(only_the_valid_one)
    assert metrics.running
    status = await cluster_status(nc)
    assert all(m["model"] != "m" or m["p50_s"] is None for m in status.models)
    samples = await scrape(metrics.metrics_url)  # still a valid scrape
    assert value(samples, "mlbuffet_node_up", node="n1") == 1


async def scrape_after_beats(nc, metrics, counters: dict[str, dict]) -> dict:
    """Publish a modelhost heartbeat per node with these counters; the scrape that has them all."""
    for node, node_counters in counters.items():
        beat = {**GOOD, "node": node, "counters": node_counters}
        await nc.publish(f"mlbuffet.heartbeat.modelhost.{node}", msgpack.packb(beat))
    await nc.flush()
    samples: dict = {}

    async def all_scraped() -> bool:
        samples.clear()
        samples.update(await scrape(metrics.metrics_url))
        return all(value(samples, "mlbuffet_node_up", node=node) == 1 for node in counters)

    await eventually(all_scraped)
    return samples


async def test_a_modelhosts_queue_is_a_gauge_and_junk_in_it_counts_as_0(nc, start_metrics):
    metrics = await start_metrics()
    samples = await scrape_after_beats(nc, metrics, {"q1": {"queued": 7}, "q2": {"queued": "lots"}})
    queued = {s.labels["node"]: s.value for s in samples["mlbuffet_inference_queued_requests"]}
    # Only nodes that report a queue have one: not the metrics actor itself.
    assert queued == {"q1": 7, "q2": 0}


async def test_a_stalled_modelhost_shows_as_a_gauge_and_its_stalls_as_a_counter(nc, start_metrics):
    metrics = await start_metrics()
    samples = await scrape_after_beats(nc, metrics, {"s1": {"stalled": 1, "stalls": 3}, "s2": {}})
    stalled = {s.labels["node"]: s.value for s in samples["mlbuffet_modelhost_stalled"]}
    assert stalled == {"s1": 1, "s2": 0}  # a host that does not say (an older one) is not
    assert value(samples, "mlbuffet_modelhost_stalls_total", node="s1") == 3


def test_up_metrics_port_settings():
    assert UpConfig().metrics_port == 9091
    config, _ = parse_args(["--metrics-port", "-1"], {})
    assert config.metrics_port == -1
    config, _ = parse_args([], {"MLBUFFET_METRICS_PORT": "0"})
    assert config.metrics_port == 0
    with pytest.raises(ConfigError, match="--metrics-port"):
        UpConfig(metrics_port=-2)
