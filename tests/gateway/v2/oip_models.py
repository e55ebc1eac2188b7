"""ONNX models with several inputs, outputs and datatypes, for the /v2 tests.

Each output is a different function of the inputs, so a mixed-up tensor
(name, datatype, byte order, element order) shows as a wrong answer.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from onnx import TensorProto, helper, numpy_helper

from tests.onnx_models import _model, _save


def mixed_types(path: Path) -> Path:
    """FP16 + INT8 + BOOL + BYTES inputs [N, 3] ([N] for text), five outputs of four types."""
    three = numpy_helper.from_array(np.array(3, dtype=np.int32), "three")
    graph = helper.make_graph(
        [
            helper.make_node("Add", ["half", "half"], ["half_doubled"]),
            helper.make_node("Cast", ["small"], ["small_wide"], to=TensorProto.INT32),
            helper.make_node("Mul", ["small_wide", "three"], ["small_tripled"]),
            helper.make_node("Not", ["flag"], ["flag_negated"]),
            helper.make_node("Cast", ["small"], ["small_half"], to=TensorProto.FLOAT16),
            helper.make_node("Where", ["flag", "small_half", "half"], ["picked"]),
            helper.make_node("Concat", ["text", "text"], ["text_twice"], axis=0),
        ],
        "mixed_types",
        [
            helper.make_tensor_value_info("half", TensorProto.FLOAT16, [None, 3]),
            helper.make_tensor_value_info("small", TensorProto.INT8, [None, 3]),
            helper.make_tensor_value_info("flag", TensorProto.BOOL, [None, 3]),
            helper.make_tensor_value_info("text", TensorProto.STRING, [None]),
        ],
        [
            helper.make_tensor_value_info("half_doubled", TensorProto.FLOAT16, [None, 3]),
            helper.make_tensor_value_info("small_tripled", TensorProto.INT32, [None, 3]),
            helper.make_tensor_value_info("flag_negated", TensorProto.BOOL, [None, 3]),
            helper.make_tensor_value_info("picked", TensorProto.FLOAT16, [None, 3]),
            helper.make_tensor_value_info("text_twice", TensorProto.STRING, [None]),
        ],
        initializer=[three],
    )
    return _save(_model(graph), path)


def wide_types(path: Path) -> Path:
    """UINT64 and FP64 [N, 2] in; their sum with constants, and FP64 row sums out."""
    big = numpy_helper.from_array(np.array([2**63, 1], dtype=np.uint64), "big")
    tenth = numpy_helper.from_array(np.array([0.1, -1e300], dtype=np.float64), "tenth")
    axes = numpy_helper.from_array(np.array([1], dtype=np.int64), "axes")
    graph = helper.make_graph(
        [
            helper.make_node("Add", ["counts", "big"], ["counts_shifted"]),
            helper.make_node("Mul", ["reals", "tenth"], ["reals_scaled"]),
            helper.make_node("ReduceSum", ["reals", "axes"], ["row_sums"], keepdims=0),
        ],
        "wide_types",
        [
            helper.make_tensor_value_info("counts", TensorProto.UINT64, [None, 2]),
            helper.make_tensor_value_info("reals", TensorProto.DOUBLE, [None, 2]),
        ],
        [
            helper.make_tensor_value_info("counts_shifted", TensorProto.UINT64, [None, 2]),
            helper.make_tensor_value_info("reals_scaled", TensorProto.DOUBLE, [None, 2]),
            helper.make_tensor_value_info("row_sums", TensorProto.DOUBLE, [None]),
        ],
        initializer=[big, tenth, axes],
    )
    return _save(_model(graph), path)
