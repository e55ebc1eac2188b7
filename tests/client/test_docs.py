"""docs/client.md's examples, run as written against a real mesh."""

from __future__ import annotations

import asyncio
import os
import re
import sys
from pathlib import Path

import pytest

from tests.client.conftest import serving

DOC = Path(__file__).resolve().parents[2] / "docs" / "client.md"


def example(kind: str) -> str:
    """The python block after `<!-- client-example: <kind> -->` in docs/client.md."""
    text = DOC.read_text()
    after = text[text.index(f"<!-- client-example: {kind} -->") :]
    match = re.search(r"```python\n(.*?)```", after, re.DOTALL)
    assert match is not None, f"docs/client.md lost its {kind} example"
    return match.group(1)


async def run_example(kind: str, folder: Path, nats_url: str) -> str:
    script = folder / f"{kind}.py"
    script.write_text(example(kind))
    process = await asyncio.create_subprocess_exec(
        sys.executable, str(script),
        cwd=folder, env={**os.environ, "MLBUFFET_NATS": nats_url},
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
    )  # fmt: skip
    out, err = await asyncio.wait_for(process.communicate(), 60)
    assert process.returncode == 0, err.decode()
    return out.decode()


@pytest.fixture
async def iris_served(upload, start_modelhost, seed_iris):
    host = await start_modelhost()
    await upload("iris", seed_iris)
    await serving(host, "iris")
    return host


async def test_the_async_example_prints_the_seed_iris_answer(tmp_path, nats_server, iris_served):
    out = await run_example("async", tmp_path, nats_server.url)
    assert out.splitlines() == [
        "model iris: versions [1]",
        f"iris:1 answered by {iris_served.node_id}",
        "label: [1]",
        "most likely: 1",
    ]


async def test_the_sync_example_prints_a_label_and_a_422(tmp_path, nats_server, iris_served):
    out = await run_example("sync", tmp_path, nats_server.url)
    lines = out.splitlines()
    assert lines[0] == "label: [0]"
    assert lines[1].startswith("error 422: input 'float_input' has shape [1, 3]")
