"""Batching fixtures: models whose first dimension is dynamic, and one that fails on bad values."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper

from tests.onnx_models import OPSET

TABLE_ROWS = 10


def lookup_table(path: Path) -> Path:
    """y = table[i] for int64 indices i [N] -> float [N, 4]: an index out of range fails the run.

    A request with a bad index passes the signature checks and only fails
    inside onnxruntime, so it reaches a batch: the test of one bad neighbour.
    """
    table = np.arange(TABLE_ROWS * 4, dtype=np.float32).reshape(TABLE_ROWS, 4)
    graph = helper.make_graph(
        [helper.make_node("Gather", ["table", "i"], ["y"], axis=0)],
        "lookup_table",
        [helper.make_tensor_value_info("i", TensorProto.INT64, [None])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [None, 4])],
        initializer=[numpy_helper.from_array(table, "table")],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", OPSET)], ir_version=8)
    onnx.checker.check_model(model)
    onnx.save(model, path)
    return path


@pytest.fixture(scope="session")
def lookup_model(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return lookup_table(tmp_path_factory.mktemp("batching") / "lookup.onnx")
