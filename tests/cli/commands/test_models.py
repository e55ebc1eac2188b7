"""`mlbuffet models` over REST and NATS against a real mesh: tables, --json, exit codes."""

from __future__ import annotations

import asyncio
import fcntl
import json
import os
import pty
import struct
import sys
import termios

from tests.cli.conftest import clean_environ


async def test_push_list_show_default_and_delete_round_trip(cli, transport, registry, model_files):
    pushed = await cli(
        "models", "push", "add", str(model_files.add_one), "--description", "adds one", *transport
    )
    assert pushed.code == 0, pushed.err
    assert pushed.out.startswith("uploaded add version 1 (default version: 1, ")

    second = await cli(
        "models", "push", "add", str(model_files.add_two), "--no-default", "--json", *transport
    )
    assert second.code == 0, second.err
    answer = second.json()
    assert (answer["model"], answer["version"], answer["default_version"]) == ("add", 2, 1)
    assert (await registry.get("add")).default_version == 1

    listed = await cli("models", "list", *transport)
    assert listed.code == 0, listed.err
    assert listed.out.splitlines() == [
        "MODEL  DEFAULT  VERSIONS  DESCRIPTION",
        "add    1        1,2       adds one",
    ]
    as_json = (await cli("models", "list", "--json", *transport)).json()
    assert as_json == [
        {"model": "add", "description": "adds one", "default_version": 1, "versions": [1, 2]}
    ]

    shown = await cli("models", "show", "add:2", *transport)
    assert shown.code == 0, shown.err
    lines = shown.out.splitlines()
    assert "version:             2" in lines and "default version:     1" in lines
    assert "INPUT  DATATYPE  SHAPE" in lines and "x      FP32      [-1, 4]" in lines
    details = (await cli("models", "show", "add", "--json", *transport)).json()
    assert details["version"] == 1 and details["inputs"][0]["name"] == "x"

    made = await cli("models", "default", "add", "2", *transport)
    assert (made.code, made.out) == (0, "add: default version is 2\n"), made.err
    assert (await registry.get("add")).default_version == 2

    deleted = await cli("models", "delete", "add:1", "--json", *transport)
    assert deleted.code == 0, deleted.err
    assert deleted.json() == {
        "model": "add",
        "deleted_versions": [1],
        "default_version": 2,
        "versions": [2],
    }
    last = await cli("models", "delete", "add", *transport)
    assert last.out == "deleted add version 2 (no versions left: the model is gone)\n"
    assert await registry.list() == []


async def test_an_unknown_model_exits_3_with_the_servers_message(cli, transport):
    shown = await cli("models", "show", "nosuch", *transport)
    assert shown.code == 3
    assert shown.err == "mlbuffet: error 404: model 'nosuch' not found\n"
    as_json = await cli("models", "delete", "nosuch:all", "--json", *transport)
    assert as_json.code == 3
    assert as_json.json()["error"]["code"] == 404


async def test_a_file_onnxruntime_cannot_load_exits_4(cli, transport, model_files, registry):
    pushed = await cli("models", "push", "bad", str(model_files.not_onnx), *transport)
    assert pushed.code == 4
    assert "error 422: " in pushed.err and "not an ONNX model" in pushed.err
    assert await registry.list() == []


async def test_usage_errors_exit_2_before_anything_is_sent(cli, tmp_path):
    unreachable = ["--url", "http://127.0.0.1:1"]
    missing = await cli("models", "push", "m", str(tmp_path / "none.onnx"), *unreachable)
    assert missing.code == 2 and "no such file" in missing.err
    bad_name = await cli("models", "show", "a.b", *unreachable)
    assert bad_name.code == 2 and "invalid model name" in bad_name.err
    bad_version = await cli("models", "default", "m", "x", *unreachable)
    assert bad_version.code == 2 and "invalid version" in bad_version.err
    assert (await cli("models")).code == 2
    assert (await cli("models", "list", "--help")).code == 0


async def test_an_unreachable_server_exits_5(cli):
    over_rest = await cli("models", "list", "--url", "http://127.0.0.1:1")
    assert over_rest.code == 5 and "cannot reach http://127.0.0.1:1" in over_rest.err
    over_nats = await cli(
        "models", "list", "--nats", "nats://127.0.0.1:1", "--nats-connect-wait", "0"
    )
    assert over_nats.code == 5 and "cannot reach NATS" in over_nats.err


LONG_DESCRIPTION = " ".join(["Adds one to every element of a 4-wide float tensor;"] * 6)
"""Over 300 characters, as the sample models' descriptions are: it would wrap any terminal."""
LIST_PREFIX = "add    1        1         "
"""The columns before DESCRIPTION of the one model these tests push."""


async def test_list_cuts_descriptions_to_the_terminal_width_and_wide_shows_them_whole(
    cli, transport, model_files, monkeypatch
):
    pushed = await cli(
        "models", "push", "add", str(model_files.add_one), "--description", LONG_DESCRIPTION,
        *transport,
    )  # fmt: skip
    assert pushed.code == 0, pushed.err
    whole = LIST_PREFIX + LONG_DESCRIPTION

    monkeypatch.setenv("COLUMNS", "60")
    cut = await cli("models", "list", *transport)
    assert cut.code == 0, cut.err
    assert cut.out.splitlines() == ["MODEL  DEFAULT  VERSIONS  DESCRIPTION", whole[:59] + "…"]
    wide = await cli("models", "list", "--wide", *transport)
    assert wide.out.splitlines()[1] == whole
    as_json = (await cli("models", "list", "--json", *transport)).json()
    assert as_json[0]["description"] == LONG_DESCRIPTION

    # Not a terminal (a pipe, a file) and no COLUMNS: whole lines, for grep and scripts.
    monkeypatch.delenv("COLUMNS")
    piped = await cli("models", "list", *transport)
    assert piped.out.splitlines()[1] == whole


async def test_list_in_a_real_terminal_fits_its_width(cli, rest, model_files):
    pushed = await cli(
        "models", "push", "add", str(model_files.add_one), "--description", LONG_DESCRIPTION, *rest
    )
    assert pushed.code == 0, pushed.err
    columns = 70
    code, shown = await in_terminal("models", "list", *rest, columns=columns)
    assert code == 0, shown
    lines = shown.replace("\r\n", "\n").splitlines()
    assert lines == [
        "MODEL  DEFAULT  VERSIONS  DESCRIPTION",
        (LIST_PREFIX + LONG_DESCRIPTION)[: columns - 1] + "…",
    ]


def read_all(fd: int) -> str:
    """What a process wrote to a pseudo-terminal that it has closed (Linux: EIO at the end)."""
    chunks = []
    while True:
        try:
            chunk = os.read(fd, 65536)
        except OSError:
            break
        if not chunk:
            break
        chunks.append(chunk)
    return b"".join(chunks).decode()


async def in_terminal(*args: str, columns: int = 80) -> tuple[int, str]:
    """`mlbuffet <args>` with its output on a pseudo-terminal `columns` wide, as a person
    runs it; (exit code, what it showed)."""
    primary, secondary = pty.openpty()
    fcntl.ioctl(secondary, termios.TIOCSWINSZ, struct.pack("HHHH", 24, columns, 0, 0))
    env = {k: v for k, v in clean_environ().items() if k not in ("COLUMNS", "LINES")}
    try:
        process = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "mlbuffet", *args,
            stdin=asyncio.subprocess.DEVNULL, stdout=secondary, stderr=secondary, env=env,
        )  # fmt: skip
        os.close(secondary)
        code = await asyncio.wait_for(process.wait(), 60)
        return code, await asyncio.to_thread(read_all, primary)
    finally:
        os.close(primary)


async def test_push_of_a_large_file_shows_progress_on_a_terminal_and_nothing_extra_in_json(
    rest, model_files
):
    size = model_files.large.stat().st_size
    assert size > 8 << 20
    code, shown = await in_terminal("models", "push", "big", str(model_files.large), *rest)
    assert code == 0, shown
    # Redrawn in place (\r) up to the whole file, with the bytes and the rate.
    frames = [f for f in shown.replace("\r\n", "\n").split("\r") if "uploading large.onnx" in f]
    assert frames, shown
    assert "100%" in frames[-1] and "16.0 MiB / 16.0 MiB" in frames[-1] and "/s" in frames[-1]
    assert "uploaded big version 1" in shown

    code, shown = await in_terminal(
        "models", "push", "big", str(model_files.large), "--json", *rest
    )
    assert code == 0, shown
    assert "uploading" not in shown and "\r" not in shown.replace("\r\n", "\n")
    assert json.loads(shown)["version"] == 2
