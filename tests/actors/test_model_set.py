"""The set of loaded models on its own, with no NATS: real ONNX files, real onnxruntime.

The bytes come from a plain function, as a placement policy or a test would
give them; the set loads, shares concurrent loads, swaps defaults, keeps
pinned versions least recently used first, and runs requests.
"""

from __future__ import annotations

import asyncio
import hashlib
import time
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import numpy as np
import pytest

from actors.modelhost.model_set import ModelSet, ModelSetLimits
from mlbuffet.protocol.errors import ModelNotFoundError
from mlbuffet.protocol.records import ModelRecord, VersionRecord
from mlbuffet.registry import ModelInspector

ROW = np.array([[1.0, 2.0, 3.0, 4.0]], np.float32)


async def version_record(version: int, path: Path) -> VersionRecord:
    inspector = ModelInspector()
    try:
        model = await inspector.inspect(path)
    finally:
        inspector.close()
    data = path.read_bytes()
    return VersionRecord(
        version=version,
        sha256=hashlib.sha256(data).hexdigest(),
        size=len(data),
        uploaded_at="2026-01-01T00:00:00Z",
        description="",
        library="",
        filename=path.name,
        signature=model.signature,
    )


@pytest.fixture
async def adder(model_files):
    """Model "adder": versions 1, 2, 3 add 1, 2 and 10; its files, and each fetch counted."""
    paths = {1: model_files.add_one, 2: model_files.add_two, 3: model_files.add_ten}
    versions = {v: await version_record(v, p) for v, p in paths.items()}
    fetched: Counter[int] = Counter()

    async def fetch(name: str, version: int) -> bytes:
        assert name == "adder"
        fetched[version] += 1
        await asyncio.sleep(0)  # a real fetch yields: concurrent loads overlap
        return paths[version].read_bytes()

    def record(default: int, *, keep: tuple[int, ...] = (1, 2, 3)) -> ModelRecord:
        return ModelRecord(
            name="adder",
            description="",
            default_version=default,
            versions={v: versions[v] for v in keep},
            next_version=4,
            created_at="2026-01-01T00:00:00Z",
            updated_at="2026-01-01T00:00:00Z",
        )

    return fetch, record, fetched


@contextmanager
def model_set(fetch, pinned_versions: int) -> Iterator[ModelSet]:
    limits = ModelSetLimits(
        workers=2, intra_op_threads=1, pinned_versions=pinned_versions, memory_budget=2**30
    )
    models = ModelSet(fetch, limits, "test-node")
    try:
        yield models
    finally:
        models.close()


async def install_default(models: ModelSet, record: ModelRecord) -> bool:
    """Load and install `record`'s default, as a reconcile does; True if the model is new."""
    runtime = await models.load("adder", record.default, record.settings)
    return models.install("adder", runtime, record)


async def answer(models: ModelSet, version: int | None) -> float:
    runtime = models.find("adder", version)
    assert runtime is not None
    computed = await models.compute(
        runtime, {"x": ROW}, runtime.output_names, arrived=time.perf_counter(), deadline_ms=None
    )
    (output,) = computed.outputs
    return float(np.frombuffer(output.data, np.float32)[0]) - 1.0  # what was added to 1.0


async def test_concurrent_loads_of_one_version_fetch_it_once(adder):
    fetch, record, fetched = adder
    with model_set(fetch, pinned_versions=4) as models:
        first, second = await asyncio.gather(
            models.load("adder", record(1).default, record(1).settings),
            models.load("adder", record(1).default, record(1).settings),
        )
        assert first is second and fetched[1] == 1


async def test_a_new_default_swaps_in_and_the_old_one_stays_pinned(adder):
    fetch, record, _ = adder
    with model_set(fetch, pinned_versions=4) as models:
        with pytest.raises(ModelNotFoundError):
            models.find("adder", None)
        assert await install_default(models, record(1)) is True
        assert models.is_current("adder", record(1)) and not models.is_current("adder", record(2))
        assert await answer(models, None) == 1.0
        assert await install_default(models, record(2)) is False
        assert await answer(models, None) == 2.0
        assert await answer(models, 1) == 1.0  # the old default, still loaded
        assert [(m.model, m.version) for m in models.loaded()] == [("adder", 1), ("adder", 2)]
        # Version 1 deleted from the registry: its pinned copy goes too.
        models.prune_pinned("adder", record(2, keep=(2, 3)))
        assert list(models.models["adder"].pinned) == []
        assert models.remove("adder") and "adder" not in models.models
        assert not models.remove("adder")


async def test_pinned_versions_are_evicted_least_recently_used_first(adder):
    fetch, record, fetched = adder
    with model_set(fetch, pinned_versions=1) as models:
        current = record(3)
        await install_default(models, current)
        assert models.find("adder", 1) is None  # not loaded yet: the caller loads it
        await models.load_pinned("adder", current, 1)
        assert await answer(models, 1) == 1.0
        await models.load_pinned("adder", current, 2)
        assert list(models.models["adder"].pinned) == [2]  # 1 evicted: room for one
        assert models.find("adder", 1) is None
        await models.load_pinned("adder", current, 1)
        assert fetched[1] == 2  # evicted, so fetched again
        assert list(models.models["adder"].pinned) == [1] and models.find("adder", 2) is None
        assert await answer(models, 1) == 1.0 and await answer(models, None) == 10.0
