"""`mlbuffet.SyncClient`: the async Client for scripts and notebooks.

The Client runs on a private event loop in a daemon thread; each method
submits its coroutine there and waits. A notebook, which runs its own loop
already, can use it too: nothing here touches the caller's loop.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import AsyncIterator, Coroutine, Iterator, Sequence
from pathlib import Path
from typing import Any, Literal, TypeVar

from mlbuffet.client.client import Client
from mlbuffet.client.events import Event, EventStream
from mlbuffet.client.results import Deleted, InferResult, Inputs, Uploaded
from mlbuffet.client.training import ExtraFile, FileInput
from mlbuffet.protocol.jobs import JobRecord
from mlbuffet.protocol.records import ModelRecord, VersionRecord

_T = TypeVar("_T")


class SyncClient:
    """Blocking twin of Client: the same methods and arguments, without `await`."""

    def __init__(self, servers: str | Sequence[str] = "nats://127.0.0.1:4222", **options: Any):
        """Connect as Client.connect(servers, **options) does."""
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(
            target=self._loop.run_forever, name="mlbuffet-client", daemon=True
        )
        self._thread.start()
        try:
            self.client: Client = self._run(Client.connect(servers, **options))
        except BaseException:
            self._stop_loop()
            raise

    def _run(self, coroutine: Coroutine[Any, Any, _T]) -> _T:
        return asyncio.run_coroutine_threadsafe(coroutine, self._loop).result()

    def _stop_loop(self) -> None:
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join()
        self._loop.close()

    def close(self) -> None:
        """Close the connection and stop the thread (safe twice)."""
        if self._loop.is_closed():
            return
        try:
            self._run(self.client.close())
        finally:
            self._stop_loop()

    def __enter__(self) -> SyncClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def infer(
        self,
        model: str,
        inputs: Inputs,
        version: int | None = None,
        outputs: Sequence[str] | None = None,
        timeout: float | None = None,
        id: str | None = None,
    ) -> InferResult:
        return self._run(self.client.infer(model, inputs, version, outputs, timeout, id))

    def models(self) -> list[ModelRecord]:
        return self._run(self.client.models())

    def model(self, name: str) -> ModelRecord:
        return self._run(self.client.model(name))

    def upload(
        self,
        name: str,
        model: str | Path | bytes,
        description: str | None = None,
        make_default: bool = True,
        filename: str | None = None,
    ) -> Uploaded:
        return self._run(self.client.upload(name, model, description, make_default, filename))

    def delete(self, name: str, version: int | Literal["all"] | None = None) -> Deleted:
        return self._run(self.client.delete(name, version))

    def set_default(self, name: str, version: int) -> ModelRecord:
        return self._run(self.client.set_default(name, version))

    def set_description(self, name: str, description: str) -> ModelRecord:
        return self._run(self.client.set_description(name, description))

    def download(self, name: str, version: int | None = None) -> bytes:
        return self._run(self.client.download(name, version))

    def save(self, name: str, path: str | Path, version: int | None = None) -> VersionRecord:
        return self._run(self.client.save(name, path, version))

    def train(
        self,
        model: str,
        script: FileInput,
        requirements: FileInput,
        dataset: FileInput,
        *,
        output_file: str | None = None,
        extra_files: Sequence[ExtraFile] = (),
        description: str | None = None,
        make_default: bool = True,
        timeout: float | None = None,
    ) -> str:
        return self._run(
            self.client.train(
                model,
                script,
                requirements,
                dataset,
                output_file=output_file,
                extra_files=extra_files,
                description=description,
                make_default=make_default,
                timeout=timeout,
            )
        )

    def job(self, job_id: str) -> JobRecord:
        return self._run(self.client.job(job_id))

    def jobs(self) -> list[JobRecord]:
        return self._run(self.client.jobs())

    def cancel(self, job_id: str) -> JobRecord:
        return self._run(self.client.cancel(job_id))

    def wait_job(self, job_id: str, timeout: float | None = None) -> JobRecord:
        return self._run(self.client.wait_job(job_id, timeout))

    def job_logs(self, job_id: str, follow: bool = False) -> Iterator[str]:
        """The job's log lines as they come (`list(...)` for the whole log so far)."""
        lines = self.client.job_logs(job_id, follow)
        try:
            while True:
                try:
                    yield self._run(_next(lines))
                except StopAsyncIteration:
                    return
        finally:
            if not self._loop.is_closed():
                self._run(lines.aclose())

    def events(
        self, models: Sequence[str] | None = None, timeout: float | None = None
    ) -> Iterator[Event]:
        """Events as they come; stops after `timeout` seconds without one (None: never).

        Subscribed when this returns: nothing that happens afterwards is missed.
        """
        stream = self._run(self.client.events(models).start())
        return self._follow(stream, timeout)

    def _follow(self, stream: EventStream, timeout: float | None) -> Iterator[Event]:
        try:
            while True:
                try:
                    yield self._run(stream.next(timeout))
                except TimeoutError:
                    return
        finally:
            # A generator left open is finalised later, maybe after close(): the
            # connection (and with it the subscription) is gone then anyway.
            if not self._loop.is_closed():
                self._run(stream.close())


async def _next(lines: AsyncIterator[str]) -> str:
    return await anext(lines)
