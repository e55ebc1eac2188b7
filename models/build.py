"""Train the sample models with scikit-learn and convert them to ONNX with skl2onnx.

    python -m models.build            # rewrites models/iris.onnx and models/diabetes.onnx
    python models/build.py --out DIR  # somewhere else

The committed .onnx files are what `mlbuffet up` registers, so running MLBuffet
needs neither scikit-learn nor skl2onnx; only rebuilding does (`pip install -e
'.[test]'`). Seeds, hyper-parameters and opsets are fixed: with the same
library versions the output is byte for byte the same, and with others the
answers below still hold (the build checks them and refuses to write models
that disagree).
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np

if __package__:
    from .catalog import EXAMPLES, SAMPLES, Sample, sample
else:  # run as a script: python models/build.py
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
    from models.catalog import EXAMPLES, SAMPLES, Sample, sample

TARGET_OPSET = {"": 17, "ai.onnx.ml": 3}
"""Fixed so that a newer skl2onnx writes the same operators; onnxruntime >= 1.17 runs them."""

INPUT_NAME = "float_input"
"""The input name of the original MLBuffet's iris.onnx, kept for both samples."""

IRIS_EXAMPLES: dict[tuple[float, ...], int] = {
    (2.0, 5.0, 1.0, 4.0): 1,  # the original MLBuffet README's request
    (5.1, 3.5, 1.4, 0.2): 0,  # the first flower of the dataset, a setosa
    (6.7, 3.0, 5.2, 2.3): 2,  # a virginica
}
"""Inputs and the class the iris sample must answer for them (the README shows the first)."""

IMAGE_SIZE = 224
"""Height and width of rgb_means's input, as the original MLBuffet's image example (dog_resized.jpg)."""

DIABETES_TOLERANCE = 1e-3
"""Relative difference allowed between scikit-learn's answer and onnxruntime's (float32 trees)."""


def train_iris() -> Any:
    """A small random forest; random_state 6 is one whose vote on [2, 5, 1, 4] is 1 like the seed's."""
    from sklearn.datasets import load_iris
    from sklearn.ensemble import RandomForestClassifier

    features, target = load_iris(return_X_y=True)
    return RandomForestClassifier(n_estimators=10, max_depth=4, random_state=6).fit(
        features, target
    )


def diabetes_data() -> tuple[np.ndarray, np.ndarray]:
    from sklearn.datasets import load_diabetes

    features, target = load_diabetes(return_X_y=True)
    return features, target


def train_diabetes() -> Any:
    """Gradient boosting: 50 shallow trees keep the file near 30 KB at R^2 ~0.73 on its data."""
    from sklearn.ensemble import GradientBoostingRegressor

    features, target = diabetes_data()
    return GradientBoostingRegressor(n_estimators=50, max_depth=3, random_state=0).fit(
        features, target
    )


def to_onnx(estimator: Any, sample: Sample, n_features: int) -> bytes:
    from skl2onnx import convert_sklearn
    from skl2onnx.common.data_types import FloatTensorType

    # A fixed graph name: skl2onnx otherwise picks a random one, and the bytes differ each run.
    model = convert_sklearn(
        estimator,
        name=sample.name,
        initial_types=[(INPUT_NAME, FloatTensorType([None, n_features]))],
        target_opset=TARGET_OPSET,
    )
    model.doc_string = sample.description
    # skl2onnx lists the opsets in set order, which changes with PYTHONHASHSEED.
    opsets = sorted(model.opset_import, key=lambda opset: opset.domain)
    del model.opset_import[:]
    model.opset_import.extend(opsets)
    data: bytes = model.SerializeToString()
    return data


class BuildCheckError(RuntimeError):
    """A freshly built model does not answer as documented; nothing was written."""


def run(data: bytes, rows: Sequence[Sequence[float]] | np.ndarray) -> list[Any]:
    """Every output of the model for `rows`, computed by onnxruntime."""
    import onnxruntime as ort

    session = ort.InferenceSession(data, providers=["CPUExecutionProvider"])
    outputs: list[Any] = session.run(None, {INPUT_NAME: np.asarray(rows, dtype=np.float32)})
    return outputs


def check_iris(data: bytes) -> None:
    labels = run(data, list(IRIS_EXAMPLES))[0].tolist()
    expected = list(IRIS_EXAMPLES.values())
    if labels != expected:
        raise BuildCheckError(f"iris answers {labels} where {expected} is documented")


def check_diabetes(data: bytes, estimator: Any) -> None:
    features, _ = diabetes_data()
    got = run(data, features[:20])[0].ravel()
    want = estimator.predict(features[:20])
    if not np.allclose(got, want, rtol=DIABETES_TOLERANCE):
        raise BuildCheckError("diabetes in onnxruntime does not match scikit-learn")


def check_rgb_means(data: bytes) -> None:
    import onnxruntime as ort

    image = np.zeros((1, 3, IMAGE_SIZE, IMAGE_SIZE), dtype=np.float32)
    image[0, 0], image[0, 1], image[0, 2] = 255.0, 128.0, 0.0
    session = ort.InferenceSession(data, providers=["CPUExecutionProvider"])
    (means,) = session.run(None, {"image": image})
    if means.tolist() != [[255.0, 128.0, 0.0]]:
        raise BuildCheckError(f"rgb_means answers {means.tolist()} for an orange image")


def build_rgb_means() -> bytes:
    """Not trained: ReduceMean over height and width of an NCHW float image."""
    from onnx import TensorProto, helper, numpy_helper

    description = sample("rgb_means").description
    axes = numpy_helper.from_array(np.array([2, 3], dtype=np.int64), "axes")
    graph = helper.make_graph(
        [helper.make_node("ReduceMean", ["image", "axes"], ["means"], keepdims=0)],
        "rgb_means",
        [
            helper.make_tensor_value_info(
                "image", TensorProto.FLOAT, [None, 3, IMAGE_SIZE, IMAGE_SIZE]
            )
        ],
        [helper.make_tensor_value_info("means", TensorProto.FLOAT, [None, 3])],
        initializer=[axes],
        doc_string=description,
    )
    model = helper.make_model(
        graph, opset_imports=[helper.make_opsetid("", 18)], ir_version=8, producer_name="onnx"
    )
    model.doc_string = description
    data: bytes = model.SerializeToString()
    check_rgb_means(data)
    return data


def build_iris() -> bytes:
    data = to_onnx(train_iris(), sample("iris"), n_features=4)
    check_iris(data)
    return data


def build_diabetes() -> bytes:
    estimator = train_diabetes()
    data = to_onnx(estimator, sample("diabetes"), n_features=10)
    check_diabetes(data, estimator)
    return data


BUILDERS: dict[str, Callable[[], bytes]] = {
    "iris": build_iris,
    "diabetes": build_diabetes,
    "rgb_means": build_rgb_means,
}


def build(out_dir: Path) -> dict[str, Path]:
    """Build every sample and example into `out_dir`; returns the written files by model name."""
    out_dir.mkdir(parents=True, exist_ok=True)
    models = (*SAMPLES, *EXAMPLES)
    built = {m.name: BUILDERS[m.name]() for m in models}  # all checked before any is written
    written: dict[str, Path] = {}
    for model in models:
        path = out_dir / model.filename
        path.write_bytes(built[model.name])
        written[model.name] = path
    return written


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m models.build", description="Build the sample ONNX models."
    )
    parser.add_argument(
        "--out",
        type=Path,
        default=Path(__file__).resolve().parent,
        help="folder to write the .onnx files into (default: the models/ folder)",
    )
    args = parser.parse_args(argv)
    try:
        written = build(args.out)
    except BuildCheckError as exc:
        print(f"models.build: {exc}", file=sys.stderr)
        return 1
    for name, path in written.items():
        print(f"{name}: {path} ({path.stat().st_size} bytes)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
