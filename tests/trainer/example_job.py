"""The example training job, examples/iris: a scikit-learn classifier trained from a CSV.

The tests, bench/train_example.py and the README run the same files: the
script reads iris.csv from its working folder and writes the model to the
path it gets as its first argument (iris.onnx in its folder without one).
"""

from __future__ import annotations

import shutil
from pathlib import Path

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "iris"
REQUIREMENTS = (EXAMPLE / "requirements.txt").read_text()
TRAIN_SCRIPT = (EXAMPLE / "train.py").read_text()


def write_iris_csv(path: Path) -> Path:
    """The example's dataset, copied to `path`."""
    shutil.copyfile(EXAMPLE / "iris.csv", path)
    return path
