"""`mlbuffet up` end to end: start, first prediction, ports in use, stopping, an external NATS."""

from __future__ import annotations

import asyncio
import re
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from mlbuffet.config import NatsConfig
from mlbuffet.mesh.connection import close_quietly, connect
from mlbuffet.natsd.server import NatsServer, NatsServerConfig
from mlbuffet.registry import Registry
from tests.cli.conftest import Spawn, StartUp, command_of, wait_gone
from tests.cli.rest import ok, predict

pytestmark = pytest.mark.processes

FIRST_PREDICTION_BOUND_S = 30.0
"""A bound that says `up` works, not a speed target: that lives in `python -m bench`
(3 s). A 2-core machine running the suite in parallel starts up to 16 s slower."""

PLAIN_PATH = "/usr/local/bin:/usr/bin:/bin"
"""A PATH without the virtualenv the tests run from."""

ORPHAN_BOUND_S = 15.0
"""About a second here; the margin is for a loaded 2-core machine, not for a drain."""


def test_up_serves_a_first_prediction_on_the_sample_iris(start_up: StartUp) -> None:
    up = start_up("--modelhosts", "2")
    assert predict(up.rest, "iris", [2, 5, 1, 4]) == [1]
    first_prediction_s = time.monotonic() - up.started_at
    print(
        f"\nmlbuffet up: ready line after {up.ready_s:.2f}s (up says {up.reported_s:.2f}s), "
        f"first prediction answered after {first_prediction_s:.2f}s"
    )
    assert first_prediction_s < FIRST_PREDICTION_BOUND_S
    assert predict(up.rest, "iris", [5.1, 3.5, 1.4, 0.2]) == [0]
    models = ok("GET", f"{up.rest}/api/v1/models")
    assert models["model_list"] == ["diabetes", "iris"]
    assert "sample models, registered on this first start" in up.out()
    # Both modelhosts loaded the samples before `up` said it was up: each answers at once.
    echoed = ok("POST", f"{up.rest}/api/test/sendtomodelhost", {"data": list(range(40))})
    assert len({item["node"] for item in echoed["results"]}) == 2


def test_up_reports_where_each_part_listens(start_up: StartUp, tmp_path: Path) -> None:
    # A shell that has not activated the environment `up` runs from, as after `make up`.
    up = start_up("--modelhosts", "1", env={"PATH": PLAIN_PATH})
    out = up.out()
    assert f"[up] REST API    {up.rest}" in out
    assert f"[up] NATS        {up.nats}" in out
    assert f"[up] data        {tmp_path / 'data'}" in out
    assert "[up] modelhosts  modelhost-1 (pid" in out
    # Children's lines are forwarded with their name in front.
    assert "[gateway] gateway " in out and "[modelhost-1] modelhost " in out
    assert (tmp_path / "data" / "jetstream").is_dir()
    # ... and says how another terminal reaches the CLI and this Python; that command works.
    hint = re.search(
        r"^\[up\] commands    in another terminal, (\. \S+/activate), then ", out, re.M
    )
    assert hint, out
    assert hint.group(1) == f". {Path(sys.executable).parent / 'activate'}"
    shell = subprocess.run(
        [
            "bash",
            "-c",
            f"{hint.group(1)} && mlbuffet models list --url {up.rest} && "
            "python -c 'import PIL, mlbuffet'",
        ],
        capture_output=True,
        text=True,
        env={"PATH": PLAIN_PATH},
        timeout=60,
        check=False,
    )
    assert shell.returncode == 0, shell.stderr
    assert shell.stdout.splitlines()[0].split() == ["MODEL", "DEFAULT", "VERSIONS", "DESCRIPTION"]


def test_sigterm_stops_every_child_and_exits_0(start_up: StartUp) -> None:
    up = start_up("--modelhosts", "2")
    children = up.descendants()
    commands = " | ".join(command_of(pid) for pid in children)
    for part in ("nats-server", "mlbuffet gateway", "mlbuffet modelhost"):
        assert part in commands, commands
    assert len(children) >= 4
    up.signal(signal.SIGTERM)
    assert up.wait() == 0
    # multiprocessing's helpers (forkserver, resource tracker: the sample check ran there)
    # end when they see `up` gone, a moment after it.
    wait_gone(children, 5, "children of a stopped up")
    assert "[up] stopped" in up.out()
    assert "Traceback" not in up.err()


def test_sigkill_of_up_leaves_no_orphans(start_up: StartUp) -> None:
    up = start_up("--modelhosts", "2")
    children = up.descendants()
    assert len(children) >= 4
    up.signal(signal.SIGKILL)
    up.wait()
    # The kernel SIGTERMs every child (PR_SET_PDEATHSIG); nats-server goes at the same moment,
    # and a drain with no server to drain to is given up at once.
    killed_at = time.monotonic()
    wait_gone(children, ORPHAN_BOUND_S, "children of a SIGKILLed up")
    print(f"\nchildren of a SIGKILLed up gone {time.monotonic() - killed_at:.2f}s after the kill")


@pytest.fixture
def busy_port() -> Iterator[int]:
    """A loopback port something already listens on."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen()
        yield listener.getsockname()[1]


@pytest.mark.parametrize("flag", ["--port", "--nats-port"])
def test_port_in_use_is_a_one_line_error_and_exit_1(
    spawn: Spawn, busy_port: int, tmp_path: Path, flag: str
) -> None:
    data = tmp_path / "never-created"
    ports = {"--port": "0", "--nats-port": "0", flag: str(busy_port)}
    up = spawn("up", "--data-dir", str(data), *(x for kv in ports.items() for x in kv))
    assert up.wait(20) == 1
    lines = up.err().strip().splitlines()
    assert len(lines) == 1, up.err()
    assert f"port {busy_port} on 127.0.0.1 is already in use" in lines[0]
    assert "Traceback" not in up.err()
    assert up.out() == ""  # nothing started, so no "[up] stopped" either
    assert not data.exists()  # checked before anything started


def test_a_child_that_cannot_start_fails_up_with_its_reason(spawn: Spawn, tmp_path: Path) -> None:
    # Read by every modelhost (and only by modelhosts): each refuses to start.
    up = spawn(
        "up",
        "--data-dir",
        str(tmp_path / "data"),
        "--port",
        "0",
        "--nats-port",
        "0",
        env={"MLBUFFET_MODELHOST_WORKERS": "0"},
    )
    assert up.wait(30) == 1
    last = up.err().strip().splitlines()[-1]
    assert last.startswith("mlbuffet: modelhost-"), up.err()
    assert "stopped before it was ready (exit code 2)" in last
    assert "--workers must be at least 1" in last
    assert up.seen, "up started no child at all"
    wait_gone(up.seen, 5, "children of an up that failed to start")
    assert "MLBuffet is up" not in up.out()


def test_up_uses_an_external_nats(start_up: StartUp, tmp_path: Path) -> None:
    async def start_server() -> NatsServer:
        server = NatsServer(NatsServerConfig(data_dir=tmp_path / "external", port=0))
        await server.start()
        return server

    loop = asyncio.new_event_loop()
    server = loop.run_until_complete(start_server())
    try:
        assert server.url is not None
        up = start_up("--nats", server.url, "--modelhosts", "1", data_dir=tmp_path / "unused")
        assert up.nats == server.url
        assert "(external)" in up.out()
        assert predict(up.rest, "iris", [2, 5, 1, 4]) == [1]
        assert not any("nats-server" in command_of(pid) for pid in up.descendants())
        up.signal(signal.SIGTERM)
        assert up.wait() == 0
        assert not (tmp_path / "unused").exists()

        async def registered() -> list[str]:
            nc = await connect(NatsConfig(urls=(server.url,)), name="test")  # type: ignore[arg-type]
            try:
                registry, created = await Registry.open(nc.jetstream())
                assert not created
                return [r.name for r in await registry.list()]
            finally:
                await close_quietly(nc)

        # The registry lives on in the external server after `up` stopped.
        assert loop.run_until_complete(registered()) == ["diabetes", "iris"]
    finally:
        loop.run_until_complete(server.stop())
        loop.close()
