"""`mlbuffet.Client`: inference, models and events straight over NATS, no gateway between.

A program that already runs on the NATS cluster saves the HTTP hop and the
JSON: tensors go as raw bytes in msgpack (docs/protocol.md), and failures
come back as the same MLBuffetError types (and statuses) the REST API uses.
Model management goes to the JetStream registry the gateway writes, with the
same checks and the same events.

One class of about 450 lines, more than our usual module, because it is the
public API: one method per operation a user can do, each a thin call into
mlbuffet.mesh (requests, hedging), mlbuffet.registry (the admin) and
mlbuffet.training (jobs). Splitting it would split what users see as one thing.
"""

from __future__ import annotations

import asyncio
import tempfile
import time
from collections.abc import AsyncGenerator, AsyncIterator, Mapping, Sequence
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any, Literal

from nats.aio.client import Client as NatsClient

from mlbuffet.client.events import EventStream
from mlbuffet.client.results import (
    Deleted,
    InferResult,
    Inputs,
    Uploaded,
    input_tensors,
    only_input,
)
from mlbuffet.client.training import ExtraFile, FileInput, stage_files
from mlbuffet.config import DEFAULT_NATS_URL, NatsConfig, split_urls
from mlbuffet.mesh import request as nats_request
from mlbuffet.mesh.connection import NatsUnavailableError, close_quietly, connect
from mlbuffet.mesh.errors import from_nats
from mlbuffet.mesh.hedging import HedgeConfig, Hedging
from mlbuffet.mesh.placement import Placer
from mlbuffet.protocol import subjects
from mlbuffet.protocol.errors import (
    DeadlineExceededError,
    ServiceUnavailableError,
    UnsupportedMediaTypeError,
)
from mlbuffet.protocol.headers import deadline_ms_of
from mlbuffet.protocol.inference import InferRequest, InferResponse
from mlbuffet.protocol.jobs import JobRecord, TrainJob
from mlbuffet.protocol.names import (
    parse_job_id,
    parse_model_name,
    parse_train_target,
    parse_version,
)
from mlbuffet.protocol.records import ModelRecord, VersionRecord
from mlbuffet.protocol.wire import pack, unpack
from mlbuffet.registry import Registry, RegistryAdmin
from mlbuffet.registry.check_file import inspect_in_subprocess
from mlbuffet.roles.node_ids import new_node_id
from mlbuffet.training import JobStore, checked_timeout, log_lines, new_job_id, submit_job

DEFAULT_TIMEOUT_S = 30.0
"""Deadline of a request that brings none, as the gateway's --request-timeout."""
NO_RESPONDERS_WAIT_S = 3.0
"""How long an inference waits for a modelhost to take a model none serves yet."""
CONNECT_WAIT_S = 2.0
DEFAULT_INPUT_TTL_S = 5.0
"""How long the input name of a default version is trusted (see Client._only_input)."""
WHO = "the client"
JOB_POLL_S = 0.25
"""How often wait_job reads a job's record."""


@asynccontextmanager
async def _mapped() -> AsyncIterator[None]:
    """NATS failures around a registry call as MLBuffet errors."""
    try:
        yield
    except Exception as exc:
        error = from_nats(exc, WHO)
        if error is None or error is exc:
            raise
        raise error from None


class Client:
    """An async MLBuffet client on one NATS connection; `async with` closes it."""

    def __init__(
        self,
        nc: NatsClient,
        *,
        timeout: float = DEFAULT_TIMEOUT_S,
        no_responders_wait: float = NO_RESPONDERS_WAIT_S,
        node_id: str | None = None,
        owns_connection: bool = False,
        hedging: HedgeConfig | None = None,
    ) -> None:
        """Wrap a connected nats-py client; `owns_connection` makes close() close it too.

        `hedging` says when an inference request that has no answer (its modelhost
        may have died) or is answered 503 goes out again; HedgeConfig() by default,
        HedgeConfig(enabled=False) sends each request once.
        """
        self.nc = nc
        self.hedging = Hedging(hedging or HedgeConfig())
        self.placer = Placer(nc)
        self.timeout = timeout
        self.no_responders_wait = no_responders_wait
        self.node_id = node_id or new_node_id("client")
        self._owns_connection = owns_connection
        self._registry: Registry | None = None
        self._registry_lock = asyncio.Lock()
        self._jobs: JobStore | None = None
        self._input_names: dict[tuple[str, int | None], tuple[str, float]] = {}

    @classmethod
    async def connect(
        cls,
        servers: str | Sequence[str] = DEFAULT_NATS_URL,
        *,
        user: str | None = None,
        password: str | None = None,
        token: str | None = None,
        creds_file: str | None = None,
        tls_ca_file: str | None = None,
        tls_cert_file: str | None = None,
        tls_key_file: str | None = None,
        connect_wait: float = CONNECT_WAIT_S,
        timeout: float = DEFAULT_TIMEOUT_S,  # noqa: ASYNC109 - the default deadline of requests
        no_responders_wait: float = NO_RESPONDERS_WAIT_S,
        **nats_options: Any,
    ) -> Client:
        """Connect to NATS (`servers`: one URL, a comma-separated list or a sequence).

        Other keywords (`nkeys_seed`, `tls` with an ssl.SSLContext, `name`, ...) go
        to nats.connect unchanged. ServiceUnavailableError if NATS cannot be reached
        within `connect_wait` seconds.
        """
        urls = split_urls(servers) if isinstance(servers, str) else tuple(servers)
        config = NatsConfig(
            urls=urls,
            user=user,
            password=password,
            token=token,
            creds_file=creds_file,
            tls_ca_file=tls_ca_file,
            tls_cert_file=tls_cert_file,
            tls_key_file=tls_key_file,
            connect_wait_s=connect_wait,
        )
        return await cls.from_config(
            config, timeout=timeout, no_responders_wait=no_responders_wait, **nats_options
        )

    @classmethod
    async def from_config(cls, config: NatsConfig, **options: Any) -> Client:
        """Connect with a NatsConfig (as `--nats` and its flags build one)."""
        settings = {
            key: options.pop(key)
            for key in ("timeout", "no_responders_wait", "hedging")
            if key in options
        }
        node_id = new_node_id("client")
        name = options.pop("name", node_id)
        try:
            nc = await connect(config, name=name, **options)
        except NatsUnavailableError as exc:
            raise ServiceUnavailableError(str(exc)) from None
        return cls(nc, node_id=node_id, owns_connection=True, **settings)

    async def close(self) -> None:
        """Close what this client opened (safe twice)."""
        if self._owns_connection:
            await close_quietly(self.nc)

    async def __aenter__(self) -> Client:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    # -- inference -----------------------------------------------------------

    async def infer(
        self,
        model: str,
        inputs: Inputs,
        version: int | None = None,
        outputs: Sequence[str] | None = None,
        timeout: float | None = None,  # noqa: ASYNC109 - sent as the request's deadline
        id: str | None = None,
    ) -> InferResult:
        """Run `model` (its default version, or `version`) on `inputs`; outputs by name.

        `inputs` maps input names to arrays; a single array is the input of a
        model that has one (its name is read from the registry).
        """
        name = parse_model_name(model)
        pinned = None if version is None else parse_version(version)
        if not isinstance(inputs, Mapping):
            inputs = {await self._only_input(name, pinned): inputs}
        deadline = time.time() + (self.timeout if timeout is None else timeout)
        request = InferRequest(
            model=name,
            version=pinned,
            inputs=input_tensors(inputs),
            outputs=None if outputs is None else tuple(outputs),
            id=id,
            deadline_ms=deadline_ms_of(deadline),
        )
        reply = await nats_request.request(
            self.nc,
            subjects.infer(name, pinned),
            pack(request),
            deadline,
            no_responders_wait_s=self.no_responders_wait,
            who=WHO,
            on_no_responders=lambda: self._check_exists(name, pinned),
            hedging=self.hedging,
            deadline_in_payload=True,
            place=lambda time_left_s: self.placer.place(name, time_left_s),
        )
        return InferResult(unpack(reply, InferResponse.from_dict))

    async def _only_input(self, name: str, version: int | None) -> str:
        """The input name of a single-input model, cached: a registry read costs a round trip.

        A pinned version never changes; the default may, so its answer is kept
        for DEFAULT_INPUT_TTL_S only (a stale name would come back as a 422).
        """
        key = (name, version)
        cached = self._input_names.get(key)
        now = time.monotonic()
        if cached is not None and (version is not None or now < cached[1]):
            return cached[0]
        record = await self.model(name)
        input_name = only_input(record.version(version).signature, name)
        self._input_names[key] = (input_name, now + DEFAULT_INPUT_TTL_S)
        return input_name

    async def _check_exists(self, name: str, version: int | None) -> None:
        """ModelNotFoundError (404) if no modelhost will ever serve `name` (`version`)."""
        (await self.model(name)).version(version)

    # -- the registry --------------------------------------------------------

    async def registry(self) -> Registry:
        """The JetStream registry (opened on first use)."""
        async with self._registry_lock:
            if self._registry is None:
                async with _mapped():
                    self._registry, _ = await Registry.open(self.nc.jetstream())
            return self._registry

    async def _admin(self) -> RegistryAdmin:
        """Model changes, announced with the same events as the gateway's."""
        return RegistryAdmin(await self.registry(), self.nc, self.node_id, WHO)

    async def models(self) -> list[ModelRecord]:
        """Every model, sorted by name."""
        registry = await self.registry()
        async with _mapped():
            return await registry.list()

    async def model(self, name: str) -> ModelRecord:
        """One model: its versions (each with its signature), default and description."""
        registry = await self.registry()
        async with _mapped():
            return await registry.get(parse_model_name(name))

    async def upload(
        self,
        name: str,
        model: str | Path | bytes,
        description: str | None = None,
        make_default: bool = True,
        filename: str | None = None,
    ) -> Uploaded:
        """Add a version of `name` from an ONNX file (a path, or its bytes).

        The file is loaded by onnxruntime in a separate process first, as the
        gateway does: one that does not load is an UnprocessableError (422).
        """
        name = parse_model_name(name)
        admin = await self._admin()
        with tempfile.TemporaryDirectory(prefix="mlbuffet-client-") as folder:
            if isinstance(model, bytes):
                path = Path(folder) / "model.onnx"
                await asyncio.to_thread(path.write_bytes, model)
                filename = filename or f"{name}.onnx"
            else:
                path = Path(model)
                filename = filename or path.name
                if path.suffix.lower() not in ("", ".onnx"):
                    raise UnsupportedMediaTypeError(
                        f"{path.name!r}: only ONNX models (.onnx) can be uploaded"
                    )
            checked = await inspect_in_subprocess(path)
            record, version = await admin.upload(
                name,
                checked,
                description=description,
                filename=filename,
                make_default=make_default,
            )
        added = record.versions[version]
        return Uploaded(name, version, record.default_version, added.sha256, added.size)

    async def delete(self, name: str, version: int | Literal["all"] | None = None) -> Deleted:
        """Delete the default version (None), one version, or every version ("all").

        Deleting the default moves it to the newest remaining version, as over REST.
        """
        name = parse_model_name(name)
        admin = await self._admin()
        if version == "all":
            gone = await admin.delete_model(name)
            return Deleted(name, tuple(sorted(gone.versions)), None, ())
        pinned = None if version is None else parse_version(version)
        record, deleted = await admin.delete_version(name, pinned)
        return Deleted(
            name,
            (deleted,),
            record.default_version if record else None,
            tuple(sorted(record.versions)) if record else (),
        )

    async def set_default(self, name: str, version: int) -> ModelRecord:
        name = parse_model_name(name)
        return await (await self._admin()).set_default(name, parse_version(version))

    async def set_description(self, name: str, description: str) -> ModelRecord:
        name = parse_model_name(name)
        return await (await self._admin()).set_description(name, description)

    async def download(self, name: str, version: int | None = None) -> bytes:
        """The ONNX file of a version (None: the default) as uploaded."""
        name = parse_model_name(name)
        number = (await self.model(name)).version(version).version
        registry = await self.registry()
        async with _mapped():
            return await registry.read(name, number)

    async def save(self, name: str, path: str | Path, version: int | None = None) -> VersionRecord:
        """Write the ONNX file of a version (None: the default) to `path`; returns its record."""
        registry = await self.registry()
        pinned = None if version is None else parse_version(version)
        with Path(path).open("wb") as sink:  # noqa: ASYNC230 - the registry writes it in chunks
            async with _mapped():
                return await registry.download(parse_model_name(name), pinned, sink)

    # -- training ------------------------------------------------------------

    async def job_store(self) -> JobStore:
        """The training jobs in JetStream (opened on first use)."""
        async with self._registry_lock:
            if self._jobs is None:
                async with _mapped():
                    self._jobs = await JobStore.open(self.nc.jetstream())
            return self._jobs

    async def train(
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
        timeout: float | None = None,  # noqa: ASYNC109 - the job's wall-clock limit, not ours
    ) -> str:
        """Submit a training job for a new version of `model`; its id, once a trainer queued it.

        Files are paths (the job sees them under their own names) or bytes
        (named train.py, requirements.txt, dataset); `extra_files` are more
        data files, paths or (name, bytes). The script writes `output_file`
        (model.onnx, or `iris.onnx` for a `model` given as `iris.onnx`); `timeout` limits its run in seconds (None: the trainer's
        default). ServiceUnavailableError (503) if no trainer runs.
        """
        name, output = parse_train_target(model, output_file)
        checked_timeout(timeout)
        store = await self.job_store()
        with tempfile.TemporaryDirectory(prefix="mlbuffet-train-") as folder:
            staged = await asyncio.to_thread(
                stage_files, Path(folder), script, requirements, dataset, extra_files
            )
            spec = TrainJob(
                job=new_job_id(),
                model=name,
                script=staged.script,
                requirements=staged.requirements,
                data=staged.data,
                output_file=output,
                description=description,
                make_default=make_default,
                timeout_s=timeout,
            )
            async with _mapped():
                accepted = await submit_job(self.nc, store, spec, staged.paths, who=WHO)
        return accepted.job

    async def job(self, job_id: str) -> JobRecord:
        """A job's record: state, times, exit code, registered version, reason (404 if unknown)."""
        store = await self.job_store()
        async with _mapped():
            return await store.get(parse_job_id(job_id))

    async def jobs(self) -> list[JobRecord]:
        """The recent jobs, newest first (up to 100)."""
        store = await self.job_store()
        async with _mapped():
            return await store.list()

    async def cancel(self, job_id: str) -> JobRecord:
        """Cancel a job: a queued one at once, a running one by asking its trainer.

        The record returned is `cancelled`, or (an active job) has
        `cancel_requested`; wait_job waits for the end. ConflictError (409) if
        the job has finished.
        """
        store = await self.job_store()
        async with _mapped():
            return await store.request_cancel(parse_job_id(job_id), self.node_id)

    async def job_logs(self, job_id: str, follow: bool = False) -> AsyncGenerator[str, None]:
        """The job's log lines (without line ends); `follow` waits for new ones until the job ends."""
        job = parse_job_id(job_id)
        store = await self.job_store()
        async with _mapped():
            async for line in log_lines(store, job, follow=follow):
                yield line

    async def wait_job(self, job_id: str, timeout: float | None = None) -> JobRecord:  # noqa: ASYNC109
        """Wait until the job has finished; its final record (succeeded, failed or cancelled).

        DeadlineExceededError (504) if it has not after `timeout` seconds (None: no limit).
        """
        deadline = None if timeout is None else time.monotonic() + timeout
        while True:
            record = await self.job(job_id)
            if record.state.finished:
                return record
            if deadline is not None and time.monotonic() >= deadline:
                raise DeadlineExceededError(
                    f"training job {job_id} is still {record.state.value} after {timeout} s"
                )
            await asyncio.sleep(JOB_POLL_S)

    # -- events --------------------------------------------------------------

    def events(self, models: Sequence[str] | None = None) -> EventStream:
        """Events of the mesh (all, or of these models): `async with` it, then `async for`."""
        return EventStream(self.nc, models)

    def __repr__(self) -> str:
        return f"Client(node_id={self.node_id!r}, servers={self.nc.servers!r})"
