"""SyncClient: the same calls without await, from a plain thread as a script makes them."""

from __future__ import annotations

import asyncio
import sys
import threading

import numpy as np
import pytest

from mlbuffet import SyncClient
from mlbuffet.protocol.errors import ModelNotFoundError
from mlbuffet.protocol.events import ModelEvent
from tests.client.conftest import serving


def client_threads() -> list[threading.Thread]:
    return [t for t in threading.enumerate() if t.name == "mlbuffet-client"]


async def test_a_script_uploads_predicts_and_deletes(nats_server, start_modelhost, model_files):
    host = await start_modelhost()

    def upload() -> tuple:
        with SyncClient(nats_server.url) as client:
            events = client.events(timeout=5)
            uploaded = client.upload("add", model_files.add_one, description="adds one")
            # The host watching the registry may load the model, and say so, before
            # the client's own "uploaded" follows its write: look for it, in order.
            seen = []
            for event in events:
                seen.append(event)
                if event.event == ModelEvent.UPLOADED:
                    break
            events.close()
            return uploaded, seen

    uploaded, seen = await asyncio.to_thread(upload)
    assert uploaded.version == 1
    assert seen and seen[-1].event == ModelEvent.UPLOADED, seen
    assert seen[-1].model == "add" and seen[-1].version == 1, seen[-1]
    await serving(host, "add")

    def script() -> tuple:
        with SyncClient(nats_server.url) as client:
            result = client.infer("add", np.ones((1, 4), dtype=np.float32))
            names = [r.name for r in client.models()]
            described = client.set_description("add", "plus one").description
            client.delete("add", "all")
            with pytest.raises(ModelNotFoundError):
                client.model("add")
            return result, names, described

    result, names, described = await asyncio.to_thread(script)
    assert result["y"].tolist() == [[2.0] * 4] and result.node == host.node_id
    assert names == ["add"] and described == "plus one"
    assert not client_threads(), "the client's thread outlived close()"


async def test_a_sync_client_that_cannot_connect_raises_and_leaves_no_thread():
    from mlbuffet.protocol.errors import ServiceUnavailableError

    with pytest.raises(ServiceUnavailableError):
        await asyncio.to_thread(SyncClient, "nats://127.0.0.1:1", connect_wait=0)
    assert not client_threads()


async def test_a_script_without_a_main_guard_can_upload(
    nats_server, model_files, tmp_path, registry
):
    """The file check runs in a fresh interpreter: nothing re-imports the user's script."""
    script = tmp_path / "push.py"
    script.write_text(
        "import sys\n"
        "from mlbuffet import SyncClient\n"
        "with SyncClient(sys.argv[1]) as client:\n"
        "    print(client.upload('add', sys.argv[2]).version)\n"
    )
    process = await asyncio.create_subprocess_exec(
        sys.executable, str(script), nats_server.url, str(model_files.add_one),
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
    )  # fmt: skip
    out, err = await asyncio.wait_for(process.communicate(), 60)
    assert process.returncode == 0, err.decode()
    assert out == b"1\n"
    assert sorted((await registry.get("add")).versions) == [1]
