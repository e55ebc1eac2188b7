"""The CLI over the REST API (`--url`): the /api/v1 routes of docs/rest-api.md."""

from __future__ import annotations

import asyncio
import mimetypes
from collections.abc import AsyncIterator, Callable
from contextlib import ExitStack
from pathlib import Path
from typing import Any

import aiohttp

from mlbuffet.cli.progress import CountingReader
from mlbuffet.cli.transport import PredictInput, TrainRequest
from mlbuffet.protocol.errors import MLBuffetError, ServiceUnavailableError, error_for_status
from mlbuffet.protocol.names import ModelRef

MODELS = "/api/v1/models"
TRAIN = "/api/v1/train"
FOLLOW_TIMEOUT = aiohttp.ClientTimeout(total=None, sock_read=None)
"""A followed log runs as long as its job: no limit once connected."""


class RestTransport:
    """One aiohttp session against a gateway; error envelopes become MLBuffetErrors."""

    def __init__(self, url: str, timeout_s: float) -> None:
        self.url = url.rstrip("/")
        self._session = aiohttp.ClientSession(
            timeout=aiohttp.ClientTimeout(total=timeout_s),
            headers={"User-Agent": "mlbuffet-cli"},
        )

    async def _call(self, method: str, path: str, **kwargs: Any) -> dict[str, Any]:
        try:
            async with self._session.request(method, self.url + path, **kwargs) as response:
                try:
                    body = await response.json(content_type=None)
                except ValueError:
                    body = None
                if not isinstance(body, dict):
                    body = {}
                _raise_for(response, body)
                return body
        except MLBuffetError:
            raise
        except TimeoutError:
            raise error_for_status(504, f"no answer from {self.url} in time") from None
        except aiohttp.ClientError as exc:
            raise ServiceUnavailableError(f"cannot reach {self.url}: {exc}") from None

    async def list_models(self) -> list[dict[str, Any]]:
        body = await self._call("GET", f"{MODELS}/information")
        return list(body.get("model_list", []))

    async def show(self, ref: ModelRef) -> dict[str, Any]:
        body = await self._call("GET", f"{MODELS}/{ref}")
        body.pop("http_status", None)
        return body

    async def push(
        self,
        name: str,
        path: Path,
        description: str | None,
        make_default: bool,
        progress: Callable[[int], None] | None = None,
    ) -> dict[str, Any]:
        previous = None
        if not make_default:
            # The REST API makes every upload the default; put the old one back after.
            models = {m["model"]: m for m in await self.list_models()}
            previous = models.get(name, {}).get("default_version")
        # aiohttp streams an open file: a large model never sits in memory whole.
        with path.open("rb") as model:
            sent = model if progress is None else CountingReader(model, progress)
            form = aiohttp.FormData()
            form.add_field(
                "path", sent, filename=path.name, content_type="application/octet-stream"
            )
            if description is not None:
                form.add_field("model_description", description)
            body = await self._call("PUT", f"{MODELS}/{name}", data=form)
        if previous is not None:
            restored = await self.set_default(name, previous)
            body["default_version"] = restored["default_version"]
        return {k: body[k] for k in ("model", "version", "default_version", "sha256", "size")}

    async def delete(self, name: str, version: int | str | None) -> dict[str, Any]:
        ref = name if version is None else f"{name}:{version}"
        body = await self._call("DELETE", f"{MODELS}/{ref}")
        deleted = body.get("deleted_versions", [body.get("deleted_version")])
        return {
            "model": body["model"],
            "deleted_versions": deleted,
            "default_version": body.get("default_version"),
            "versions": body.get("versions", []),
        }

    async def set_default(self, name: str, version: int) -> dict[str, Any]:
        body = await self._call("POST", f"{MODELS}/{name}/default", json={"default": version})
        return {"model": body["model"], "default_version": body["default_version"]}

    async def predict(self, ref: ModelRef, given: PredictInput) -> dict[str, Any]:
        path = f"{MODELS}/{ref}/prediction"
        if given.image is not None:
            kind = mimetypes.guess_type(given.image.name)[0] or "application/octet-stream"
            form = aiohttp.FormData()
            data = await asyncio.to_thread(given.image.read_bytes)
            form.add_field("file", data, filename=given.image.name, content_type=kind)
            form.add_field("preprocess", given.preprocess)
            if given.image_input is not None:
                form.add_field("input", given.image_input)
            body = await self._call("POST", path, data=form)
        else:
            body = await self._call("POST", path, json={"values": given.values_for_json()})
        return {k: body[k] for k in ("model", "version", "node", "outputs")}

    async def train(self, request: TrainRequest) -> dict[str, Any]:
        path = f"{TRAIN}/{request.model}"
        if request.output_file is not None:
            path += f"/{request.output_file}"
        with ExitStack() as files:
            form = aiohttp.FormData()
            given = [
                ("script", request.script),
                ("requirements", request.requirements),
                ("dataset", request.dataset),
                *((f"data{i}", p) for i, p in enumerate(request.data, 1)),
            ]
            for field, file in given:
                form.add_field(
                    field,
                    files.enter_context(file.open("rb")),
                    filename=file.name,
                    content_type="application/octet-stream",
                )
            if request.description is not None:
                form.add_field("description", request.description)
            form.add_field("make_default", "true" if request.make_default else "false")
            if request.timeout_s is not None:
                form.add_field("timeout", str(request.timeout_s))
            body = await self._call("POST", path, data=form)
        return {k: body[k] for k in ("job", "model", "state")}

    async def job(self, job: str) -> dict[str, Any]:
        body = await self._call("GET", f"{TRAIN}/{job}")
        body.pop("http_status", None)
        return body

    async def jobs(self) -> list[dict[str, Any]]:
        body = await self._call("GET", TRAIN)
        return list(body.get("jobs", []))

    async def cancel(self, job: str) -> dict[str, Any]:
        body = await self._call("DELETE", f"{TRAIN}/{job}")
        body.pop("http_status", None)
        return body

    async def job_logs(self, job: str, follow: bool) -> AsyncIterator[str]:
        params = {"follow": "1"} if follow else {}
        timeout = FOLLOW_TIMEOUT if follow else None
        url = f"{self.url}{TRAIN}/{job}/logs"
        try:
            async with self._session.get(url, params=params, timeout=timeout) as response:
                if response.status >= 400:
                    try:
                        body = await response.json(content_type=None)
                    except ValueError:
                        body = None
                    _raise_for(response, body if isinstance(body, dict) else {})
                # Split by hand: a script's line may be longer than aiohttp's readline allows.
                pending = b""
                async for chunk in response.content.iter_any():
                    *lines, pending = (pending + chunk).split(b"\n")
                    for line in lines:
                        yield line.decode("utf-8", "replace")
                if pending:
                    yield pending.decode("utf-8", "replace")
        except TimeoutError:
            raise error_for_status(504, f"no answer from {self.url} in time") from None
        except aiohttp.ClientError as exc:
            raise ServiceUnavailableError(f"cannot reach {self.url}: {exc}") from None

    async def close(self) -> None:
        await self._session.close()


def _raise_for(response: aiohttp.ClientResponse, body: dict[str, Any]) -> None:
    """The MLBuffetError of an error reply (its envelope's description), if it is one."""
    if response.status >= 400:
        status = body.get("http_status", {})
        message = status.get("description") if isinstance(status, dict) else None
        raise error_for_status(response.status, message or response.reason or "")
