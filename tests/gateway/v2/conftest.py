"""A real mesh for the /v2 tests: nats-server, registry, one modelhost, a gateway on a TCP port."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from aiohttp.test_utils import TestClient

from tests.gateway.v2 import oip_models
from tests.onnx_models import ModelFiles


@dataclass(frozen=True)
class OipModels:
    mixed: Path
    wide: Path


@pytest.fixture(scope="session")
def oip_model_files(tmp_path_factory: pytest.TempPathFactory) -> OipModels:
    folder = tmp_path_factory.mktemp("oip-models")
    return OipModels(
        mixed=oip_models.mixed_types(folder / "mixed.onnx"),
        wide=oip_models.wide_types(folder / "wide.onnx"),
    )


@pytest.fixture
def model_paths(model_files: ModelFiles, oip_model_files: OipModels) -> dict[str, Path]:
    """The models every /v2 test finds in the registry, by name."""
    return {
        "all_types": model_files.all_types,
        "mixed": oip_model_files.mixed,
        "wide": oip_model_files.wide,
        "two_inputs": model_files.two_inputs,
        "sk_iris": model_files.sk_iris,
    }


@pytest.fixture
async def v2(
    make_gateway: Any, upload: Any, start_modelhost: Any, model_paths: dict[str, Path]
) -> TestClient[Any, Any]:
    """A gateway in front of one modelhost serving every model of `model_paths`."""
    for name, path in model_paths.items():
        await upload(name, path)
    await start_modelhost()
    return await make_gateway()
