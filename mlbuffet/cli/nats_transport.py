"""The CLI straight over NATS (`--nats`): mlbuffet.Client, no gateway needed."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any, Literal

import numpy.typing as npt

from mlbuffet.cli.transport import PredictInput, TrainRequest
from mlbuffet.client import Client
from mlbuffet.codecs.images import image_array, image_input
from mlbuffet.codecs.outputs import jsonable
from mlbuffet.codecs.values import arrays_from_values
from mlbuffet.config import NatsConfig
from mlbuffet.protocol.names import ModelRef
from mlbuffet.registry.details import model_details
from mlbuffet.training.job_view import job_view


class NatsTransport:
    def __init__(self, client: Client) -> None:
        self.client = client

    @classmethod
    async def open(cls, config: NatsConfig, timeout_s: float) -> NatsTransport:
        return cls(await Client.from_config(config, timeout=timeout_s))

    async def list_models(self) -> list[dict[str, Any]]:
        return [
            {
                "model": r.name,
                "description": r.description,
                "default_version": r.default_version,
                "versions": sorted(r.versions),
            }
            for r in await self.client.models()
        ]

    async def show(self, ref: ModelRef) -> dict[str, Any]:
        record = await self.client.model(ref.name)
        return model_details(record, record.version(ref.version))

    async def push(
        self,
        name: str,
        path: Path,
        description: str | None,
        make_default: bool,
        progress: Callable[[int], None] | None = None,
    ) -> dict[str, Any]:
        uploaded = await self.client.upload(name, path, description, make_default)
        return {
            "model": uploaded.model,
            "version": uploaded.version,
            "default_version": uploaded.default_version,
            "sha256": uploaded.sha256,
            "size": uploaded.size,
        }

    async def delete(self, name: str, version: int | str | None) -> dict[str, Any]:
        which: int | Literal["all"] | None = "all" if version == "all" else None
        if isinstance(version, int):
            which = version
        deleted = await self.client.delete(name, which)
        return {
            "model": deleted.model,
            "deleted_versions": list(deleted.deleted_versions),
            "default_version": deleted.default_version,
            "versions": list(deleted.versions),
        }

    async def set_default(self, name: str, version: int) -> dict[str, Any]:
        record = await self.client.set_default(name, version)
        return {"model": record.name, "default_version": record.default_version}

    async def predict(self, ref: ModelRef, given: PredictInput) -> dict[str, Any]:
        inputs: dict[str, npt.NDArray[Any]] | npt.NDArray[Any]
        if given.arrays and list(given.arrays) != [""]:
            inputs = given.arrays
        elif given.arrays:
            inputs = given.arrays[""]
        else:
            signature = (await self.client.model(ref.name)).version(ref.version).signature
            if given.image is not None:
                spec = image_input(signature, given.image_input)
                data = await asyncio.to_thread(given.image.read_bytes)
                inputs = {spec.name: image_array(data, spec, given.preprocess)}
            else:
                inputs = arrays_from_values(given.values, signature)
        result = await self.client.infer(ref.name, inputs, version=ref.version)
        return {
            "model": result.model,
            "version": result.version,
            "node": result.node,
            "outputs": {name: jsonable(value) for name, value in result.items()},
        }

    async def train(self, request: TrainRequest) -> dict[str, Any]:
        job = await self.client.train(
            request.model,
            request.script,
            request.requirements,
            request.dataset,
            output_file=request.output_file,
            extra_files=request.data,
            description=request.description,
            make_default=request.make_default,
            timeout=request.timeout_s,
        )
        return {"job": job, "model": request.model, "state": "queued"}

    async def job(self, job: str) -> dict[str, Any]:
        return job_view(await self.client.job(job))

    async def jobs(self) -> list[dict[str, Any]]:
        return [job_view(record) for record in await self.client.jobs()]

    async def cancel(self, job: str) -> dict[str, Any]:
        return job_view(await self.client.cancel(job))

    async def job_logs(self, job: str, follow: bool) -> AsyncIterator[str]:
        async for line in self.client.job_logs(job, follow):
            yield line

    async def close(self) -> None:
        await self.client.close()
