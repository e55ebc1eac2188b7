"""What `mlbuffet models`, `predict` and `train` ask of a server, over REST or NATS.

Both transports answer in the same plain maps (the REST API's fields), so the
commands print and `--json` the same whichever way the request went.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

import numpy as np
import numpy.typing as npt

from mlbuffet.protocol.names import ModelRef


@dataclass(frozen=True, slots=True)
class PredictInput:
    """One of: JSON `values`, an `image` file, or named arrays (name "" for a single-input model)."""

    values: Any = None
    image: Path | None = None
    preprocess: str = "raw"
    image_input: str | None = None
    arrays: dict[str, npt.NDArray[Any]] = field(default_factory=dict)

    def values_for_json(self) -> Any:
        """`values` as the REST API takes them: arrays become a map of input names to lists."""
        if not self.arrays:
            return self.values
        if list(self.arrays) == [""]:
            return self.arrays[""].tolist()
        return {name: _listed(array) for name, array in self.arrays.items()}


@dataclass(frozen=True, slots=True)
class TrainRequest:
    """A training job as `mlbuffet train submit` gives it: local files and the job's settings."""

    model: str
    script: Path
    requirements: Path
    dataset: Path
    data: tuple[Path, ...] = ()
    output_file: str | None = None
    description: str | None = None
    make_default: bool = True
    timeout_s: float | None = None


def _listed(array: npt.NDArray[Any]) -> Any:
    if array.dtype.kind == "S" or array.dtype == np.dtype(object):
        return np.vectorize(lambda v: v.decode() if isinstance(v, bytes) else v)(array).tolist()
    return array.tolist()


class Transport(Protocol):
    """The calls the CLI makes; each answer is a JSON-ready map, each failure an MLBuffetError."""

    async def list_models(self) -> list[dict[str, Any]]:
        """Every model: model, description, default_version, versions."""

    async def show(self, ref: ModelRef) -> dict[str, Any]:
        """As GET /api/v1/models/<ref>."""

    async def push(
        self,
        name: str,
        path: Path,
        description: str | None,
        make_default: bool,
        progress: Callable[[int], None] | None = None,
    ) -> dict[str, Any]:
        """model, version, default_version, sha256, size; `progress(bytes sent)` as it goes
        (REST only: over NATS the object store sends the file in one call)."""

    async def delete(self, name: str, version: int | str | None) -> dict[str, Any]:
        """model, deleted_versions, default_version, versions ("all": every version)."""

    async def set_default(self, name: str, version: int) -> dict[str, Any]:
        """model, default_version."""

    async def predict(self, ref: ModelRef, given: PredictInput) -> dict[str, Any]:
        """model, version, node, outputs (by name, JSON-ready)."""

    async def train(self, request: TrainRequest) -> dict[str, Any]:
        """job, model, state (queued): as POST /api/v1/train/<model>."""

    async def job(self, job: str) -> dict[str, Any]:
        """As GET /api/v1/train/<job> (mlbuffet.training.job_view.job_view)."""

    async def jobs(self) -> list[dict[str, Any]]:
        """The recent jobs, newest first, each as job()."""

    async def cancel(self, job: str) -> dict[str, Any]:
        """The job after the cancel request, as job()."""

    def job_logs(self, job: str, follow: bool) -> AsyncIterator[str]:
        """The job's log lines; `follow` keeps reading until the job ends."""

    async def close(self) -> None: ...
