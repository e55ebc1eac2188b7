"""docs/protocol.md's client, run as written by a Python that cannot import MLBuffet."""

from __future__ import annotations

import ast
import asyncio
import os
import re
import sys
import sysconfig
from pathlib import Path

import pytest

DOC = Path(__file__).resolve().parents[2] / "docs" / "protocol.md"
MARKER = "<!-- plain-client"


def client_code() -> str:
    """The python block that follows the plain-client marker in docs/protocol.md."""
    text = DOC.read_text()
    after = text[text.index(MARKER) :]
    match = re.search(r"```python\n(.*?)```", after, re.DOTALL)
    assert match is not None, "docs/protocol.md lost its client code block"
    return match.group(1)


async def run_outside_mlbuffet(folder: Path, *args: str) -> tuple[int, str, str]:
    """Run this interpreter without site (so no editable install of MLBuffet) and with only the
    installed third-party packages on its path, from a folder outside the repository."""
    env = {
        "PATH": os.environ.get("PATH", "/usr/bin"),
        "PYTHONPATH": os.pathsep.join(
            dict.fromkeys([sysconfig.get_paths()["purelib"], sysconfig.get_paths()["platlib"]])
        ),
    }
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-S", *args,
        cwd=folder, env=env, stdin=asyncio.subprocess.DEVNULL,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
    )  # fmt: skip
    out, err = await asyncio.wait_for(process.communicate(), 60)
    return process.returncode, out.decode(), err.decode()


def test_the_documented_client_imports_nothing_from_mlbuffet():
    tree = ast.parse(client_code())
    imported = {
        alias.name.split(".")[0]
        for node in ast.walk(tree)
        if isinstance(node, ast.Import | ast.ImportFrom)
        for alias in (
            node.names if isinstance(node, ast.Import) else [ast.alias(node.module or "")]
        )
    }
    assert imported <= {"asyncio", "json", "struct", "sys", "time", "msgpack", "nats", "numpy"}


@pytest.mark.processes
async def test_the_documented_client_gets_the_seed_iris_prediction_over_plain_nats(
    tmp_path, nats_server, upload, start_modelhost, seed_iris
):
    await upload("iris", seed_iris)
    host = await start_modelhost()
    script = tmp_path / "iris_client.py"
    script.write_text(client_code())

    code, _, err = await run_outside_mlbuffet(tmp_path, "-c", "import mlbuffet")
    assert code != 0 and "No module named 'mlbuffet'" in err, "the client could import MLBuffet"

    code, out, err = await run_outside_mlbuffet(
        tmp_path, str(script), nats_server.url, "iris", "2", "5", "1", "4"
    )
    assert code == 0, err
    lines = out.splitlines()
    assert lines[0] == f"answered by {host.node_id}, iris version 1"
    assert lines[1] == "output_label: [1]"
    assert lines[2].startswith("output_probability: [{0: ")
    probabilities = ast.literal_eval(lines[2].removeprefix("output_probability: "))
    assert max(probabilities[0], key=probabilities[0].get) == 1

    code, out, _ = await run_outside_mlbuffet(
        tmp_path, str(script), nats_server.url, "iris", "5.1", "3.5", "1.4", "0.2"
    )
    assert code == 0
    assert "output_label: [0]" in out.splitlines()


@pytest.mark.processes
async def test_the_documented_client_reports_an_error_reply(
    tmp_path, nats_server, upload, start_modelhost, seed_iris
):
    await upload("iris", seed_iris)
    await start_modelhost()
    script = tmp_path / "iris_client.py"
    script.write_text(client_code())
    code, _, err = await run_outside_mlbuffet(
        tmp_path, str(script), nats_server.url, "iris", "1", "2", "3"
    )
    assert code == 1
    assert "error 422: input 'float_input' has shape [1, 3]" in err
