"""A headless chromium driven over the DevTools protocol (aiohttp speaks its websocket).

Not `--dump-dom --virtual-time-budget`: the dashboard keeps an event stream
open, which holds chromium's virtual time still for ever. Over DevTools the
test watches one live page as a person would: open it once, make
predictions, see its numbers change.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import itertools
import json
import re
import shutil
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest

START_TIMEOUT_S = 30.0
CALL_TIMEOUT_S = 30.0
DEVTOOLS_URL = re.compile(r"DevTools listening on (ws://127\.0\.0\.1:(\d+)/\S+)")


def chromium() -> str:
    for name in ("chromium", "chromium-browser", "google-chrome"):
        path = shutil.which(name)
        if path:
            return path
    pytest.fail(
        "this test needs Debian's chromium in PATH (apt-get install chromium; scripts/prepare-test-machine installs it)"
    )


class Page:
    def __init__(self, ws: aiohttp.ClientWebSocketResponse) -> None:
        self.ws = ws
        self._ids = itertools.count(1)
        self.problems: list[str] = []
        """Console errors, uncaught exceptions and failed loads, as DevTools reported them."""

    def _note(self, event: dict[str, Any]) -> None:
        method, params = event.get("method"), event.get("params", {})
        if method == "Runtime.exceptionThrown":
            details = params.get("exceptionDetails", {})
            thrown = details.get("exception", {}).get("description") or details.get("text")
            self.problems.append(f"exception: {thrown}")
        elif method == "Runtime.consoleAPICalled" and params.get("type") == "error":
            args = " ".join(
                str(a.get("value", a.get("description"))) for a in params.get("args", [])
            )
            self.problems.append(f"console.error: {args}")
        elif method == "Log.entryAdded" and params.get("entry", {}).get("level") == "error":
            entry = params["entry"]
            self.problems.append(
                f"{entry.get('source')}: {entry.get('text')} {entry.get('url', '')}"
            )

    async def watch_console(self) -> None:
        """From now on, note console errors, exceptions and failed loads in `problems`."""
        await self.call("Runtime.enable")
        await self.call("Log.enable")

    async def call(self, method: str, **params: Any) -> dict[str, Any]:
        """One DevTools command; its result (events arriving meanwhile are noted, see _note)."""
        call_id = next(self._ids)
        await self.ws.send_json({"id": call_id, "method": method, "params": params})
        while True:
            msg = await asyncio.wait_for(self.ws.receive(), CALL_TIMEOUT_S)
            if msg.type != aiohttp.WSMsgType.TEXT:
                raise AssertionError(f"DevTools connection ended: {msg.type}")
            answer = json.loads(msg.data)
            if "method" in answer:
                self._note(answer)
            if answer.get("id") == call_id:
                if "error" in answer:
                    raise AssertionError(f"{method}: {answer['error']}")
                return dict(answer["result"])

    async def evaluate(self, expression: str) -> Any:
        result = await self.call("Runtime.evaluate", expression=expression, returnByValue=True)
        return result["result"].get("value")

    async def text(self, selector: str) -> str | None:
        return await self.evaluate(
            f"(document.querySelector({json.dumps(selector)}) || {{}}).textContent || null"
        )

    async def click(self, selector: str) -> None:
        """Click the element as a person would: focus it and press it (its handlers run)."""
        found = await self.evaluate(
            f"(() => {{ const e = document.querySelector({json.dumps(selector)});"
            " if (!e) return false; e.scrollIntoView(); e.focus(); e.click(); return true; })()"
        )
        assert found, f"nothing to click at {selector}"

    async def choose_files(self, selector: str, *paths: Path) -> None:
        """Put files in a file input, as the file chooser does (its change event fires)."""
        result = await self.call(
            "Runtime.evaluate", expression=f"document.querySelector({json.dumps(selector)})"
        )
        object_id = result["result"].get("objectId")
        assert object_id, f"no file input at {selector}"
        await self.call("DOM.setFileInputFiles", files=[str(p) for p in paths], objectId=object_id)

    async def resize(self, width: int, height: int, mobile: bool = False) -> None:
        await self.call(
            "Emulation.setDeviceMetricsOverride",
            width=width,
            height=height,
            deviceScaleFactor=1,
            mobile=mobile,
        )

    async def screenshot(self, path: Path, *, full_page: bool = False) -> None:
        """The viewport as a PNG, or (full_page) the whole page from its top."""
        params: dict[str, Any] = {"format": "png"}
        if full_page:
            size = (await self.call("Page.getLayoutMetrics"))["cssContentSize"]
            params["clip"] = {
                "x": 0,
                "y": 0,
                "width": size["width"],
                "height": size["height"],
                "scale": 1,
            }
            params["captureBeyondViewport"] = True
        result = await self.call("Page.captureScreenshot", **params)
        path.write_bytes(base64.b64decode(result["data"]))


@contextlib.asynccontextmanager
async def open_page(url: str, profile: Path) -> AsyncIterator[Page]:
    """Headless chromium (own profile dir, DevTools on a free loopback port) showing `url`."""
    process = await asyncio.create_subprocess_exec(
        chromium(),
        "--headless",
        "--no-sandbox",  # CI runs as root, where chromium's sandbox cannot start
        "--disable-gpu",
        "--disable-quic",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        "--disable-dev-shm-usage",
        "--no-first-run",
        "--hide-scrollbars",
        "--window-size=1280,800",
        "--remote-debugging-address=127.0.0.1",
        "--remote-debugging-port=0",
        f"--user-data-dir={profile}",
        "about:blank",
        stdin=asyncio.subprocess.DEVNULL,
        stdout=asyncio.subprocess.DEVNULL,
        stderr=asyncio.subprocess.PIPE,
    )
    try:
        port = await asyncio.wait_for(_devtools_port(process), START_TIMEOUT_S)
        async with aiohttp.ClientSession() as session:
            async with session.get(f"http://127.0.0.1:{port}/json/list") as response:
                targets = await response.json()
            page_url = next(t["webSocketDebuggerUrl"] for t in targets if t["type"] == "page")
            async with session.ws_connect(page_url, max_msg_size=64 << 20) as ws:
                page = Page(ws)
                await page.watch_console()
                await page.call("Page.navigate", url=url)
                yield page
    finally:
        if process.returncode is None:
            process.kill()
        await process.wait()


async def _devtools_port(process: asyncio.subprocess.Process) -> int:
    assert process.stderr is not None
    seen = []
    while True:
        line = (await process.stderr.readline()).decode(errors="replace")
        if not line:
            raise AssertionError(
                "chromium exited before DevTools listened:\n" + "".join(seen[-20:])
            )
        seen.append(line)
        match = DEVTOOLS_URL.search(line)
        if match:
            # Keep draining stderr, or chromium blocks once the pipe is full.
            asyncio.get_running_loop().create_task(_drain(process.stderr))
            return int(match.group(2))


async def _drain(stream: asyncio.StreamReader) -> None:
    while await stream.read(65536):
        pass
