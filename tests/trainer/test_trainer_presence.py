"""The trainer is seen like every other node: heartbeats with the documented fields, and $SRV."""

from __future__ import annotations

import json

from mlbuffet.protocol import subjects
from mlbuffet.protocol.cluster import Heartbeat
from tests.observe.conftest import INTERVAL_S
from tests.observe.test_heartbeats import documented_fields, raw_heartbeats


async def test_a_trainer_sends_the_documented_heartbeat_and_is_found_by_srv_ping(nc, start_trainer):
    beats = await raw_heartbeats(nc)
    trainer = await start_trainer(heartbeat_interval_s=INTERVAL_S)
    subject, raw = await beats.wait_for(lambda m: m[1]["node"] == trainer.node_id)
    assert set(raw) == documented_fields("Heartbeat")
    beat = Heartbeat.from_dict(raw)
    assert (beat.role, subject) == ("trainer", subjects.heartbeat("trainer", trainer.node_id))
    assert beat.in_flight == 0
    assert raw["counters"] == {"running": [], "queued": 0, "finished": {}}

    inbox = nc.new_inbox()
    answers = await nc.subscribe(inbox)
    await nc.publish("$SRV.PING.mlbuffet-trainer", b"", reply=inbox)
    ping = json.loads((await answers.next_msg(timeout=5)).data)
    await answers.unsubscribe()
    assert ping["name"] == "mlbuffet-trainer"
    assert ping["metadata"]["node"] == trainer.node_id
