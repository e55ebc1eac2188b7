"""BentoML serving the model: `bentoml serve bench.peers.bentoml_service:Iris` (its own venv).

Settings (BentoML's docs on workers): one worker process per core
(`workers="cpu_count"`), a synchronous API (run in BentoML's thread pool),
no adaptive batching (MLBuffet's iris does not batch). The model path comes
from MLBUFFET_BENCH_MODEL.
"""

from __future__ import annotations

import os
from typing import Any

import bentoml

from bench.peers.onnx_model import OnnxModel


@bentoml.service(workers="cpu_count", traffic={"timeout": 30})
class Iris:
    def __init__(self) -> None:
        self.model = OnnxModel(os.environ["MLBUFFET_BENCH_MODEL"])

    @bentoml.api  # type: ignore[untyped-decorator,unused-ignore]
    def predict(self, values: list[list[float]]) -> dict[str, Any]:
        return {"values": self.model.run(values).tolist()}
