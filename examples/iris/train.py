"""Train an iris classifier from iris.csv and save it as ONNX: MLBuffet's training example.

Run by a trainer (`mlbuffet train iris --script train.py --requirements
requirements.txt --dataset iris.csv --follow`), it writes the model to the
path the trainer gives as its first argument. Run by hand (`python train.py`),
it writes iris.onnx here, the way scripts for the original MLBuffet did;
the trainer finds that too.
"""

import csv
import os
import sys

import numpy as np
from skl2onnx import to_onnx
from sklearn.linear_model import LogisticRegression

output = sys.argv[1] if len(sys.argv) > 1 else "iris.onnx"

with open("iris.csv") as f:
    rows = list(csv.reader(f))[1:]
features = np.array([[float(v) for v in row[:4]] for row in rows], dtype=np.float32)
labels = np.array([int(row[4]) for row in rows])
print(f"training on {len(rows)} rows", flush=True)
model = LogisticRegression(max_iter=1000).fit(features, labels)
print(f"accuracy {model.score(features, labels):.3f}", flush=True)
onx = to_onnx(model, features[:1], options={"zipmap": False}, target_opset=15)
with open(output, "wb") as f:
    f.write(onx.SerializeToString())
print(f"model written ({os.path.basename(output)})", flush=True)
