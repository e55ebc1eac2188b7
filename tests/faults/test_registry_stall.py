"""A registry write while nats-server is stalled (SIGSTOP, then SIGCONT) answers 503 or 504.

Every kind of registry write, through the gateway and through mlbuffet.Client:
the answer comes within a bound and is never a 500; afterwards the registry
holds the write whole or not at all (every version it lists has its file,
nothing half-done shows), and the same write, retried, succeeds. Each test
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
import nats.js.errors as js_errors
import pytest
from aiohttp.test_utils import TestClient

from mlbuffet import Client
from mlbuffet.natsd.server import NatsServer
from mlbuffet.protocol.errors import MLBuffetError
from mlbuffet.protocol.records import ModelRecord
from mlbuffet.registry import Registry
from mlbuffet.training import JobStore
from tests.conftest import eventually
from tests.gateway.conftest import (
    make_gateway,  # noqa: F401 - fixture
)
from tests.trainer.conftest import start_trainer  # noqa: F401 - fixture

STALL_S = 7.0
"""How long nats-server stays stopped: past the 5 s JetStream API timeout, so the write meets it."""
ANSWER_BOUND_S = 30.0
"""From sending the write to its answer, stall included; undoing a failed write waits out
the stall too (one more JetStream timeout per step), which is what takes longer than STALL_S."""
MODEL = "iris"
NEW_DESCRIPTION = "described during a stall"
TRAIN_SCRIPT = b"print('never run')\n"


@contextmanager
def stalled(server: NatsServer) -> Iterator[None]:
    """nats-server stopped (SIGSTOP) for the block, continued (SIGCONT) after it, whatever happens."""
    assert server.pid is not None
    os.kill(server.pid, signal.SIGSTOP)
    try:
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


async def stalled_write(server: NatsServer, send: Awaitable[int]) -> tuple[int, float]:
    """Send a write while the server is stopped; its status and the seconds to it."""
    started = time.monotonic()
    with stalled(server):
        task = asyncio.ensure_future(send)
        await asyncio.wait({task}, timeout=STALL_S)
    status = await asyncio.wait_for(task, ANSWER_BOUND_S - (time.monotonic() - started))
    return status, time.monotonic() - started


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

    status, seconds = await stalled_write(nats_server, write.send(writer, seed_iris))

    assert status in (503, 504), f"{kind} via {via} answered {status} after {seconds:.1f} s"
    assert seconds < ANSWER_BOUND_S
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
async def test_a_training_submission_during_a_stall_is_503_or_504_and_leaves_no_files(
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

    status, seconds = await stalled_write(nats_server, writer.train(seed_iris))

    assert status in (503, 504), f"training via {via} answered {status} after {seconds:.1f} s"

    async def no_inputs_left() -> bool:
        try:
            return not [o for o in await jobs.files.list() if not o.deleted]
        except js_errors.NotFoundError:
            return True

    await eventually(no_inputs_left)
    assert await jobs.list() == []

    assert await writer.train(seed_iris) == 202
    (job,) = await jobs.list()
    await jobs.request_cancel(job.job, "test")
