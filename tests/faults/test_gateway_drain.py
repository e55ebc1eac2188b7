"""SIGTERM to a gateway process with requests in flight: they are answered, then it exits 0."""

from __future__ import annotations

import asyncio
import re
import signal
import sys
from pathlib import Path

import aiohttp
import numpy as np
import pytest

from tests.faults.conftest import WIDTH
from tests.modelhost_processes import READY_TIMEOUT_S, REPO

pytestmark = pytest.mark.processes

IN_FLIGHT = 6
ROWS = 200
"""A batch that keeps the one onnxruntime worker busy for a while: requests queue up."""


async def start_gateway(nats_url: str, log_dir: Path) -> tuple[asyncio.subprocess.Process, str]:
    with (log_dir / "gateway.log").open("wb") as log:
        process = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "mlbuffet", "gateway", "--nats", nats_url, "--port", "0",
            "--drain-timeout", "20",
            cwd=REPO, stdin=asyncio.subprocess.DEVNULL, stdout=asyncio.subprocess.PIPE, stderr=log,
        )  # fmt: skip
    assert process.stdout is not None
    while True:
        line = (await asyncio.wait_for(process.stdout.readline(), READY_TIMEOUT_S)).decode()
        assert line, (log_dir / "gateway.log").read_text()
        if found := re.search(r"listening on (http://\S+)", line):
            return process, found.group(1)


async def wait_all_arrived(
    session: aiohttp.ClientSession, url: str, calls: list[asyncio.Future[int]]
) -> int:
    """Until every call has reached a handler and some are still there; how many are.

    A call counts as arrived when it is in flight at the gateway (its /metrics,
    less the /metrics request itself) or already answered: on a loaded machine
    the first can be answered before the last arrives.
    """
    for _ in range(200):
        async with session.get(f"{url}/metrics") as response:
            text = await response.text()
        found = re.search(r"^mlbuffet_http_requests_in_flight (\S+)$", text, re.MULTILINE)
        in_flight = int(float(found.group(1))) - 1 if found else 0
        answered = sum(call.done() for call in calls)
        if in_flight >= 1 and in_flight + answered >= len(calls):
            return in_flight
        await asyncio.sleep(0.05)
    pytest.fail(f"the {len(calls)} requests never all reached the gateway with some in flight")


async def test_a_gateway_told_to_stop_answers_the_requests_it_has_then_exits_0(
    upload, slow_model, start_modelhost, nats_server, tmp_path
):
    await upload("slow", slow_model)
    await start_modelhost(workers=1)
    gateway, url = await start_gateway(nats_server.url, tmp_path)
    values = np.full((ROWS, WIDTH), 0.01, dtype=np.float32).tolist()
    try:
        async with aiohttp.ClientSession() as session:

            async def predict() -> int:
                async with session.post(
                    f"{url}/api/v1/models/slow/prediction", json={"values": values}
                ) as response:
                    await response.read()
                    return response.status

            loop = asyncio.get_running_loop()
            started = loop.time()
            calls = [asyncio.ensure_future(predict()) for _ in range(IN_FLIGHT)]
            # Every request has reached a handler: the host works through them one by one.
            held = await wait_all_arrived(session, url, calls)
            gateway.send_signal(signal.SIGTERM)
            signalled = loop.time() - started
            statuses = await asyncio.wait_for(asyncio.gather(*calls), 30)
            answered = loop.time() - started
        exit_code = await asyncio.wait_for(gateway.wait(), 30)
    finally:
        if gateway.returncode is None:
            gateway.kill()
            await gateway.wait()
    print(
        f"\ngateway SIGTERMed with {held} of {IN_FLIGHT} requests in flight: statuses {statuses}, "
        f"all answered {answered:.1f} s after they were sent; exit code {exit_code}"
    )
    assert statuses == [200] * IN_FLIGHT
    assert answered > signalled  # some were still in flight at the signal
    assert exit_code == 0
