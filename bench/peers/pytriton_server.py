"""Triton through PyTriton serving the model: python -m bench.peers.pytriton_server MODEL PORT.

Settings (PyTriton's docs): its default model config (dynamic batching on,
max_batch_size 4, no queue delay) and two model instances (a list of
inference callables: one per core). Triton's HTTP, gRPC and metrics listen
on 127.0.0.1. Its Python backend stub needs this interpreter's libpython on
LD_LIBRARY_PATH, which the bench sets.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Callable

import numpy as np
from pytriton.decorators import batch
from pytriton.model_config import ModelConfig, Tensor
from pytriton.triton import Triton, TritonConfig

from bench.peers.onnx_model import OnnxModel

INSTANCES = os.cpu_count() or 1


def make_infer(path: str) -> Callable[..., dict[str, np.ndarray]]:
    model = OnnxModel(path)

    @batch  # type: ignore[untyped-decorator,unused-ignore]
    def infer(**inputs: np.ndarray) -> dict[str, np.ndarray]:
        labels = model.run(inputs[model.input])
        return {model.outputs[0]: labels.reshape(-1, 1)}

    return infer  # type: ignore[no-any-return]


def main(path: str, port: int, grpc_port: int, metrics_port: int) -> None:
    model = OnnxModel(path)
    config = TritonConfig(
        http_address="127.0.0.1",
        http_port=port,
        grpc_address="127.0.0.1",
        grpc_port=grpc_port,
        metrics_address="127.0.0.1",
        metrics_port=metrics_port,
    )
    with Triton(config=config) as triton:
        triton.bind(
            model_name="iris",
            infer_func=[make_infer(path) for _ in range(INSTANCES)],
            inputs=[Tensor(name=model.input, dtype=np.float32, shape=model.row_shape)],
            outputs=[Tensor(name=model.outputs[0], dtype=np.int64, shape=(1,))],
            config=ModelConfig(),
            strict=False,
        )
        print("pytriton ready", flush=True)
        triton.serve()


if __name__ == "__main__":
    main(sys.argv[1], *(int(a) for a in sys.argv[2:5]))
