"""The one way every reference server runs the model: onnxruntime, one intra-op thread.

Imported by the peers' own servers inside their own virtualenvs, so it needs
nothing but numpy and onnxruntime (never mlbuffet).
"""

from __future__ import annotations

from typing import Any

import numpy as np
import onnxruntime as ort


class OnnxModel:
    """One session, like a MLBuffet modelhost's default: one intra-op thread, one inter-op."""

    def __init__(self, path: str) -> None:
        options = ort.SessionOptions()
        options.intra_op_num_threads = 1
        options.inter_op_num_threads = 1
        self.session = ort.InferenceSession(path, options, providers=["CPUExecutionProvider"])
        first = self.session.get_inputs()[0]
        self.input = first.name
        self.row_shape = tuple(d if isinstance(d, int) else -1 for d in first.shape[1:])
        self.outputs = [o.name for o in self.session.get_outputs() if o.type.startswith("tensor")]

    def run(self, rows: Any) -> np.ndarray:
        """The first tensor output for `rows` (JSON rows or an array of shape [N, ...])."""
        array = np.asarray(rows, dtype=np.float32).reshape(-1, *self.row_shape)
        result: np.ndarray = self.session.run(self.outputs[:1], {self.input: array})[0]
        return result
