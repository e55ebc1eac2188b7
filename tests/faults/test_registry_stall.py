"""A registry write while nats-server is stalled (SIGSTOP, then SIGCONT) answers 503 or 504.

Every kind of registry write, through the gateway and through mlbuffet.Client:
the answer comes within a bound and is never a 500; afterwards the registry
holds the write whole or not at all (every version it lists has its file,
nothing half-done shows), and the same write, retried, succeeds. nats-server stays stopped until the write
answers, so every write meets the stall, however long its preparation. Each test
stalls a nats-server process of its own (the function-scoped fixture), so
the stall touches nothing else.
"""

from __future__ import annotations

import asyncio
import hashlib
import os
import signal
import time
from collections.abc import Awaitable, Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from aiohttp.test_utils import TestClient

from gateway.service import MESH
from mlbuffet import Client
from mlbuffet.natsd.server import NatsServer
from mlbuffet.protocol.errors import MLBuffetError
from mlbuffet.protocol.records import ModelRecord
from mlbuffet.registry import Registry
from mlbuffet.training import JobStore
from tests.gateway.conftest import (
    make_gateway,  # noqa: F401 - fixture
)
from tests.trainer.conftest import start_trainer  # noqa: F401 - fixture

JETSTREAM_TIMEOUT_S = 5.0
"""nats-py's JetStream API timeout: what a call meets while the server is stopped."""
WRITE_ANSWER_S = 4 * JETSTREAM_TIMEOUT_S
"""From sending a registry write to its answer. nats-server stays stopped until then, so
every write meets the timeout; one is enough to fail it, and nothing undone takes longer."""
TRAIN_ANSWER_S = 8 * JETSTREAM_TIMEOUT_S
"""A training submission meets it once for its first input file, then once more for each
of the three it removes again (that meets the stall too): 20 s, and as much to spare."""
MODEL = "iris"
NEW_DESCRIPTION = "described during a stall"
TRAIN_SCRIPT = b"print('never run')\n"


def process_state(pid: int) -> str:
    """The state letter of /proc/<pid>/stat: "T" once a SIGSTOP has taken effect."""
    stat = Path(f"/proc/{pid}/stat").read_text()
    return stat[stat.rindex(")") + 2]


@contextmanager
def stalled(server: NatsServer) -> Iterator[None]:
    """nats-server stopped (SIGSTOP) for the block, continued (SIGCONT) after it, whatever happens.

    The block starts only once the process is seen stopped: on a loaded machine a signal
    takes effect a moment after kill() returns, and a write sent in that moment got through.
    """
    assert server.pid is not None
    os.kill(server.pid, signal.SIGSTOP)
    try:
        deadline = time.monotonic() + 5.0
        while process_state(server.pid) != "T":
            assert time.monotonic() < deadline, "nats-server did not stop within 5 s"
            time.sleep(0.001)
        yield
    finally:
        os.kill(server.pid, signal.SIGCONT)


@dataclass(frozen=True)
class View:
    """What a write may change in a model's record; None when there is no model."""

    versions: dict[int, str] | None
    default: int | None = None
    description: str | None = None
    settings: dict[str, Any] | None = None
    serving: bool | None = None


def view_of(record: ModelRecord | None) -> View:
    if record is None or not record.versions:
        return View(versions=None)
    return View(
        versions={v: r.sha256 for v, r in record.versions.items()},
        default=record.default_version,
        description=record.description,
        settings=record.settings.to_dict(),
        serving=record.serving,
    )


async def current_view(registry: Registry) -> View:
    entry = await registry.entry(MODEL)
    return view_of(entry.record if entry else None)


async def assert_files_whole(registry: Registry) -> None:
    """Every version the record lists has its file, with the sha256 the record says."""
    entry = await registry.entry(MODEL)
    if entry is None:
        return
    for number, version in entry.record.versions.items():
        data = await registry.read(MODEL, number)
        assert hashlib.sha256(data).hexdigest() == version.sha256


# -- the writers: REST and the client, each answering an HTTP-style status -----------


class RestWriter:
    def __init__(self, gateway: TestClient[Any, Any]) -> None:
        self.gateway = gateway
        self.nc = gateway.app[MESH].nc

    async def _status(self, method: str, path: str, **kwargs: Any) -> int:
        response = await self.gateway.request(method, path, **kwargs)
        body = await response.json()
        assert response.status != 500, body
        return response.status

    async def upload(self, path: Path) -> int:
        form = aiohttp.FormData()
        form.add_field("path", path.read_bytes(), filename=path.name)
        return await self._status("PUT", f"/api/v1/models/{MODEL}", data=form)

    async def describe(self) -> int:
        body = {"model_description": NEW_DESCRIPTION}
        return await self._status("POST", f"/api/v1/models/{MODEL}", json=body)

    async def set_default(self, version: int) -> int:
        return await self._status(
            "POST", f"/api/v1/models/{MODEL}/default", json={"default": version}
        )

    async def delete(self, version: int | str) -> int:
        return await self._status("DELETE", f"/api/v1/models/{MODEL}:{version}")

    async def settings(self) -> int:
        return await self._status(
            "PUT", f"/api/v1/models/{MODEL}/settings", json={"intra_op_threads": 2}
        )

    async def load(self) -> int:
        return await self._status("POST", f"/v2/repository/models/{MODEL}/load")

    async def unload(self) -> int:
        return await self._status("POST", f"/v2/repository/models/{MODEL}/unload")

    async def train(self, dataset: Path) -> int:
        form = aiohttp.FormData()
        form.add_field("script", TRAIN_SCRIPT, filename="train.py")
        form.add_field("requirements", b"", filename="requirements.txt")
        form.add_field("dataset", dataset.read_bytes(), filename="iris.onnx")
        return await self._status("POST", f"/api/v1/train/{MODEL}", data=form)


class ClientWriter:
    def __init__(self, client: Client) -> None:
        self.client = client
        self.nc = client.nc

    async def _status(self, write: Awaitable[Any], success: int = 200) -> int:
        try:
            await write
        except MLBuffetError as exc:
            return exc.status
        return success

    async def upload(self, path: Path) -> int:
        return await self._status(self.client.upload(MODEL, path), 201)

    async def describe(self) -> int:
        return await self._status(self.client.set_description(MODEL, NEW_DESCRIPTION))

    async def set_default(self, version: int) -> int:
        return await self._status(self.client.set_default(MODEL, version))

    async def delete(self, version: int | str) -> int:
        return await self._status(self.client.delete(MODEL, version))  # type: ignore[arg-type]

    async def train(self, dataset: Path) -> int:
        return await self._status(
            self.client.train(MODEL, TRAIN_SCRIPT, b"", dataset.read_bytes()), 202
        )


# -- each kind of write: what it does, and the registry it leaves when it happened ----


@dataclass(frozen=True)
class Write:
    send: Callable[[Any, Path], Awaitable[int]]
    done: Callable[[View], View] | None
    """The view after the write, from the one before; None for an upload (checked apart)."""
    success: int = 200


def _changed(view: View, **changes: Any) -> View:
    return View(**{**view.__dict__, **changes})


WRITES = {
    "upload": Write(lambda w, seed: w.upload(seed), None, 201),
    "description": Write(
        lambda w, seed: w.describe(), lambda v: _changed(v, description=NEW_DESCRIPTION)
    ),
    "default": Write(lambda w, seed: w.set_default(1), lambda v: _changed(v, default=1)),
    "delete-version": Write(
        lambda w, seed: w.delete(2),
        lambda v: _changed(v, versions={1: v.versions[1]}, default=1),  # type: ignore[index]
    ),
    "delete-all": Write(lambda w, seed: w.delete("all"), lambda v: View(versions=None)),
    "settings": Write(
        lambda w, seed: w.settings(),
        lambda v: _changed(v, settings={**(v.settings or {}), "intra_op_threads": 2}),
    ),
    "unload": Write(lambda w, seed: w.unload(), lambda v: _changed(v, serving=False)),
    "load": Write(lambda w, seed: w.load(), lambda v: _changed(v, serving=True)),
}

CASES = [
    *((kind, "rest") for kind in WRITES),
    *(
        (kind, "client")
        for kind in ("upload", "description", "default", "delete-version", "delete-all")
    ),
]


@pytest.fixture
async def writers(make_gateway: Any, nats_server: NatsServer) -> dict[str, Any]:  # noqa: F811
    gateway = await make_gateway()
    assert nats_server.url is not None
    client = await Client.connect(nats_server.url, no_responders_wait=0.5)
    yield {"rest": RestWriter(gateway), "client": ClientWriter(client)}
    await client.close()


async def stalled_write(
    server: NatsServer, writer: Any, send: Awaitable[int], bound_s: float
) -> tuple[int, float]:
    """Send a write while the server is stopped, and keep it stopped until the write answers.

    Its status and the seconds to it. Then the writer's connection is flushed, so
    that the server has taken whatever the write had sent before the test looks.
    """
    started = time.monotonic()
    task = asyncio.ensure_future(send)
    with stalled(server):
        done, _ = await asyncio.wait({task}, timeout=bound_s)
    seconds = time.monotonic() - started
    if not done:
        task.cancel()
        pytest.fail(f"no answer within {bound_s} s of a stall")
    await writer.nc.flush(timeout=10)
    return task.result(), seconds


@pytest.mark.parametrize(("kind", "via"), CASES, ids=[f"{k}-{v}" for k, v in CASES])
async def test_a_registry_write_during_a_stall_is_503_or_504_and_whole_or_not_at_all(
    kind: str,
    via: str,
    writers: dict[str, Any],
    nats_server: NatsServer,
    registry: Registry,
    seed_iris: Path,
    start_modelhost: Any,
) -> None:
    write = WRITES[kind]
    writer = writers[via]
    for _ in range(2):  # versions 1 and 2; 2 is the default
        assert await writer.upload(seed_iris) == 201
    if kind == "load":
        await registry.set_serving(MODEL, False)
        await start_modelhost()
    before = await current_view(registry)

    status, seconds = await stalled_write(
        nats_server, writer, write.send(writer, seed_iris), WRITE_ANSWER_S
    )

    assert status in (503, 504), f"{kind} via {via} answered {status} after {seconds:.1f} s"
    assert seconds < WRITE_ANSWER_S
    after = await current_view(registry)
    if write.done is None:
        added = set(after.versions or ()) - set(before.versions or ())
        assert added == set() or (len(added) == 1 and after.default == added.pop())
        assert {
            v: s for v, s in (after.versions or {}).items() if v in (before.versions or {})
        } == before.versions
    else:
        assert after in (before, write.done(before)), f"half a {kind}: {before} -> {after}"
    await assert_files_whole(registry)

    if kind in ("delete-version", "delete-all") and after != before:
        return  # it happened whole: deleting again would rightly be a 404
    retried = await write.send(writer, seed_iris)
    assert retried == write.success, f"the retried {kind} via {via} answered {retried}"
    if write.done is not None:
        assert await current_view(registry) == write.done(before)
    await assert_files_whole(registry)


@pytest.mark.parametrize("via", ["rest", "client"])
async def test_a_training_submission_during_a_stall_is_503_or_504_and_queues_no_job(
    via: str,
    writers: dict[str, Any],
    nats_server: NatsServer,
    nc: Any,
    seed_iris: Path,
    start_trainer: Any,  # noqa: F811
) -> None:
    jobs = await JobStore.open(nc.jetstream())
    await start_trainer()
    writer = writers[via]
    if via == "client":
        # Opened before the stall, as the gateway opens it at start: a client that opens
        # it first during one waits out JetStream's leader election (JETSTREAM_WAIT_S).
        await writer.client.job_store()

    status, seconds = await stalled_write(
        nats_server, writer, writer.train(seed_iris), TRAIN_ANSWER_S
    )

    assert status in (503, 504), f"training via {via} answered {status} after {seconds:.1f} s"
    assert seconds < TRAIN_ANSWER_S
    # Not accepted, so no job: its input files may stay behind (removing them met the
    # stall too), under an id no job has, as an orphan file of a failed upload does.
    assert await jobs.list() == []

    assert await writer.train(seed_iris) == 202
    (job,) = await jobs.list()
    await jobs.request_cancel(job.job, "test")
