"""Fixtures of the commands `mlbuffet models` and `mlbuffet predict`: a real mesh, a real gateway on a
loopback port, and the CLI's main(argv) run in a thread with its output captured."""

from __future__ import annotations

import asyncio
import contextlib
import io
import json
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

import pytest

from mlbuffet.cli.main import main
from tests.gateway.conftest import make_gateway  # noqa: F401 - a fixture this module's users need

_OUTPUT_LOCK = asyncio.Lock()
"""sys.stdout is one per process: one CLI run at a time captures it."""


@dataclass
class Run:
    code: int
    out: str
    err: str

    def json(self) -> Any:
        return json.loads(self.out)


Cli = Callable[..., Awaitable[Run]]


@pytest.fixture
def cli() -> Cli:
    """Run `mlbuffet <args>` in-process (in a thread: it runs its own event loop)."""

    async def run(*args: str) -> Run:
        out, err = io.StringIO(), io.StringIO()

        def call() -> int:
            with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
                return main(list(args))

        async with _OUTPUT_LOCK:
            code = await asyncio.to_thread(call)
        return Run(code, out.getvalue(), err.getvalue())

    return run


@pytest.fixture
async def rest(make_gateway) -> list[str]:  # noqa: F811 - the imported fixture
    """`--url` of a real gateway on the test's NATS."""
    client = await make_gateway()
    return ["--url", str(client.make_url("/")).rstrip("/")]


@pytest.fixture
def nats(nats_server) -> list[str]:
    return ["--nats", nats_server.url]


@pytest.fixture(params=["rest", "nats"])
def transport(request) -> list[str]:
    """Each test that takes this runs twice: over REST, then straight over NATS."""
    return request.getfixturevalue(request.param)
