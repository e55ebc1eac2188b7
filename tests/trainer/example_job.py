"""The example training job: a scikit-learn classifier trained from a CSV, converted with skl2onnx.

Used by the end-to-end tests and by bench/train_example.py. The script reads
iris.csv from its working folder and writes the model to the path it gets
as its first argument (also in $MLBUFFET_OUTPUT_FILE).
"""

from __future__ import annotations

from pathlib import Path

REQUIREMENTS = "scikit-learn>=1.3\nskl2onnx>=1.16\n"

TRAIN_SCRIPT = """\
import csv
import sys

import numpy as np
from skl2onnx import to_onnx
from sklearn.linear_model import LogisticRegression

with open("iris.csv") as f:
    rows = list(csv.reader(f))[1:]
features = np.array([[float(v) for v in row[:4]] for row in rows], dtype=np.float32)
labels = np.array([int(row[4]) for row in rows])
print(f"training on {len(rows)} rows", flush=True)
model = LogisticRegression(max_iter=1000).fit(features, labels)
print(f"accuracy {model.score(features, labels):.3f}", flush=True)
onx = to_onnx(model, features[:1], options={"zipmap": False}, target_opset=15)
with open(sys.argv[1], "wb") as f:
    f.write(onx.SerializeToString())
print("model written", flush=True)
"""


def write_iris_csv(path: Path) -> Path:
    """The iris data set (shipped with scikit-learn, nothing downloaded) as a CSV file."""
    from sklearn.datasets import load_iris

    data = load_iris()
    lines = ["sepal_length,sepal_width,petal_length,petal_width,label"]
    lines += [
        ",".join(f"{v:.1f}" for v in row) + f",{label}"
        for row, label in zip(data.data, data.target, strict=True)
    ]
    path.write_text("\n".join(lines) + "\n")
    return path
