"""The benchmark's models: the sample iris, and squeezenet with its batch dimension made dynamic.

squeezenet comes from the `onnx` package (backend/test/data/light): the real
network whose weights are ConstantOfShape nodes, so the file is 15 KB yet
every convolution is computed. Nothing large is committed; it is rebuilt here.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

IRIS = Path(__file__).resolve().parents[1] / "models" / "iris.onnx"
IRIS_INPUT = "float_input"
IRIS_ROW = [2.0, 5.0, 1.0, 4.0]
SQUEEZENET_INPUT = "data_0"
SQUEEZENET_SHAPE = (3, 224, 224)


def squeezenet_source() -> Path:
    import onnx

    return (
        Path(onnx.__file__).parent / "backend" / "test" / "data" / "light" / "light_squeezenet.onnx"
    )


def build_squeezenet(path: Path) -> Path:
    """squeezenet with dimension 0 of its input and output renamed "N": any batch size."""
    import onnx

    model = onnx.load(squeezenet_source())
    for value in (*model.graph.input, *model.graph.output):
        dims = value.type.tensor_type.shape.dim
        if dims:
            dims[0].ClearField("dim_value")
            dims[0].dim_param = "N"
    onnx.checker.check_model(model)
    onnx.save(model, path)
    return path


def squeezenet_batch(rows: int, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).random((rows, *SQUEEZENET_SHAPE), dtype=np.float32)
