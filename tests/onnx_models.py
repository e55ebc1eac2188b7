"""Real ONNX models for the tests, built with the onnx package and scikit-learn.

Each model's answer shows what happened to its input, so a test can check
the whole path (JSON or image -> tensor -> NATS -> onnxruntime -> reply)
rather than trust a canned value.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

OPSET = 17


def _save(model: onnx.ModelProto, path: Path, doc: str = "") -> Path:
    model.doc_string = doc
    model.producer_name = "mlbuffet-tests"
    onnx.checker.check_model(model)
    onnx.save(model, path)
    return path


def _model(graph: onnx.GraphProto) -> onnx.ModelProto:
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", OPSET)], ir_version=8)


def add_constant(path: Path, constant: float, width: int = 4) -> Path:
    """y = x + constant, x float32 [N, width]: tells which version answered."""
    c = numpy_helper.from_array(np.full((width,), constant, dtype=np.float32), "c")
    graph = helper.make_graph(
        [helper.make_node("Add", ["x", "c"], ["y"])],
        f"add_{constant}",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [None, width])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [None, width])],
        initializer=[c],
    )
    return _save(_model(graph), path, f"adds {constant} to every element")


def channel_means_nchw(path: Path, size: int = 64) -> Path:
    """Mean of each colour channel of a float32 NCHW image [N, 3, size, size] -> [N, 3]."""
    graph = helper.make_graph(
        [helper.make_node("ReduceMean", ["image"], ["means"], axes=[2, 3], keepdims=0)],
        "channel_means_nchw",
        [helper.make_tensor_value_info("image", TensorProto.FLOAT, [None, 3, size, size])],
        [helper.make_tensor_value_info("means", TensorProto.FLOAT, [None, 3])],
    )
    return _save(_model(graph), path)


def channel_means_nhwc_uint8(path: Path) -> Path:
    """Mean of each channel of a uint8 NHWC image of any size [N, H, W, 3] -> float [N, 3]."""
    graph = helper.make_graph(
        [
            helper.make_node("Cast", ["image"], ["as_float"], to=TensorProto.FLOAT),
            helper.make_node("ReduceMean", ["as_float"], ["means"], axes=[1, 2], keepdims=0),
        ],
        "channel_means_nhwc",
        [helper.make_tensor_value_info("image", TensorProto.UINT8, [None, None, None, 3])],
        [helper.make_tensor_value_info("means", TensorProto.FLOAT, [None, 3])],
    )
    return _save(_model(graph), path)


def two_inputs(path: Path) -> Path:
    """sum = a + b and product = a * b, a and b float32 [N, 2]."""
    graph = helper.make_graph(
        [
            helper.make_node("Add", ["a", "b"], ["sum"]),
            helper.make_node("Mul", ["a", "b"], ["product"]),
        ],
        "two_inputs",
        [
            helper.make_tensor_value_info("a", TensorProto.FLOAT, [None, 2]),
            helper.make_tensor_value_info("b", TensorProto.FLOAT, [None, 2]),
        ],
        [
            helper.make_tensor_value_info("sum", TensorProto.FLOAT, [None, 2]),
            helper.make_tensor_value_info("product", TensorProto.FLOAT, [None, 2]),
        ],
    )
    return _save(_model(graph), path)


IDENTITY_TYPES = {
    "BOOL": TensorProto.BOOL,
    "INT8": TensorProto.INT8,
    "INT16": TensorProto.INT16,
    "INT32": TensorProto.INT32,
    "INT64": TensorProto.INT64,
    "UINT8": TensorProto.UINT8,
    "UINT16": TensorProto.UINT16,
    "UINT32": TensorProto.UINT32,
    "UINT64": TensorProto.UINT64,
    "FP16": TensorProto.FLOAT16,
    "FP32": TensorProto.FLOAT,
    "FP64": TensorProto.DOUBLE,
    "BYTES": TensorProto.STRING,
}


def identity_all_types(path: Path) -> Path:
    """One Identity per datatype: input `in_<TYPE>` [N, 2] comes back as `out_<TYPE>`."""
    nodes, inputs, outputs = [], [], []
    for name, proto in IDENTITY_TYPES.items():
        nodes.append(helper.make_node("Identity", [f"in_{name}"], [f"out_{name}"]))
        inputs.append(helper.make_tensor_value_info(f"in_{name}", proto, [None, 2]))
        outputs.append(helper.make_tensor_value_info(f"out_{name}", proto, [None, 2]))
    graph = helper.make_graph(nodes, "identity_all_types", inputs, outputs)
    return _save(_model(graph), path)


def matmul_chain(path: Path, width: int = 256, depth: int = 40) -> Path:
    """CPU-bound: `depth` matrix products of [N, width] by a fixed [width, width] matrix."""
    rng = np.random.default_rng(0)
    weight = numpy_helper.from_array(
        (rng.standard_normal((width, width)) / np.sqrt(width)).astype(np.float32), "w"
    )
    nodes = []
    previous = "x"
    for i in range(depth):
        out = "y" if i == depth - 1 else f"h{i}"
        nodes.append(helper.make_node("MatMul", [previous, "w"], [out]))
        previous = out
    graph = helper.make_graph(
        nodes,
        "matmul_chain",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [None, width])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [None, width])],
        initializer=[weight],
    )
    return _save(_model(graph), path)


def spin(path: Path, width: int = 256, depth: int = 20) -> Path:
    """Work proportional to its `reps` input, answer equal to `x`: x [1, width] tiled
    reps[0] times, `depth` products with the identity, then the mean of the rows."""
    weight = numpy_helper.from_array(np.eye(width, dtype=np.float32), "w")
    nodes = [helper.make_node("Tile", ["x", "reps"], ["t"])]
    previous = "t"
    for i in range(depth):
        nodes.append(helper.make_node("MatMul", [previous, "w"], [f"h{i}"]))
        previous = f"h{i}"
    nodes.append(helper.make_node("ReduceMean", [previous], ["y"], axes=[0], keepdims=1))
    graph = helper.make_graph(
        nodes,
        "spin",
        [
            helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, width]),
            helper.make_tensor_value_info("reps", TensorProto.INT64, [2]),
        ],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, width])],
        initializer=[weight],
    )
    return _save(_model(graph), path)


def tile_rows(path: Path, times: int, width: int = 1024) -> Path:
    """y = x repeated `times` times along the rows: a small request with a big answer."""
    repeats = numpy_helper.from_array(np.array([times, 1], dtype=np.int64), "repeats")
    graph = helper.make_graph(
        [helper.make_node("Tile", ["x", "repeats"], ["y"])],
        "tile_rows",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [None, width])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [None, width])],
        initializer=[repeats],
    )
    return _save(_model(graph), path)


def slow_to_load(path: Path, nodes: int = 10_000) -> Path:
    """A chain of `nodes` Add nodes: cheap to run, but onnxruntime takes most of a second to load it."""
    c = numpy_helper.from_array(np.ones((4,), dtype=np.float32), "c")
    chain = []
    previous = "x"
    for i in range(nodes):
        out = "y" if i == nodes - 1 else f"h{i}"
        chain.append(helper.make_node("Add", [previous, "c"], [out]))
        previous = out
    graph = helper.make_graph(
        chain,
        "slow_to_load",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [None, 4])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [None, 4])],
        initializer=[c],
    )
    return _save(_model(graph), path)


LOOKUP_WIDTH = 4


def lookup_table(path: Path, mib: float, offset: float) -> Path:
    """y = table[i], a float32 table of `mib` MiB whose row r holds r + offset in every column.

    Its weights cannot be folded away at load (the row comes from the request),
    so the model costs at least its table in memory; the answer says which
    model answered (offset) and that the row was read (r).
    """
    rows = max(1, int(mib * 2**20) // (4 * LOOKUP_WIDTH))
    table = np.repeat(np.arange(rows, dtype=np.float32)[:, None] + offset, LOOKUP_WIDTH, axis=1)
    graph = helper.make_graph(
        [helper.make_node("Gather", ["table", "i"], ["y"], axis=0)],
        "lookup_table",
        [helper.make_tensor_value_info("i", TensorProto.INT64, [None])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [None, LOOKUP_WIDTH])],
        initializer=[numpy_helper.from_array(table, "table")],
    )
    return _save(_model(graph), path, f"row r of a {mib} MiB table: r + {offset}")


def sklearn_iris(path: Path) -> Path:
    """A scikit-learn classifier converted by skl2onnx, with its ZipMap probabilities."""
    from skl2onnx import to_onnx
    from sklearn.datasets import load_iris
    from sklearn.linear_model import LogisticRegression

    data = load_iris()
    classifier = LogisticRegression(max_iter=500).fit(data.data, data.target)
    onx = to_onnx(classifier, data.data[:1].astype(np.float32), target_opset=OPSET)
    path.write_bytes(onx.SerializeToString())
    return path


def squeezenet(path: Path) -> Path:
    """The squeezenet test model shipped inside the onnx package (fixed [1, 3, 224, 224] input)."""
    source = (
        Path(onnx.__file__).parent / "backend" / "test" / "data" / "light" / "light_squeezenet.onnx"
    )
    path.write_bytes(source.read_bytes())
    return path


@dataclass(frozen=True)
class ModelFiles:
    add_one: Path
    add_two: Path
    add_ten: Path
    nchw: Path
    nhwc: Path
    two_inputs: Path
    all_types: Path
    matmul: Path
    sk_iris: Path
    squeezenet: Path
    not_onnx: Path
    large: Path
    """add_constant over 4 Mi floats: a 16 MiB file, slow enough to interrupt its upload."""
    tile: Path
    """tile_rows x4096: 16 KiB of input, 16 MiB of answer (over the test server's max_payload)."""
    slow_load: Path


def build_all(folder: Path) -> ModelFiles:
    not_onnx = folder / "not_a_model.onnx"
    not_onnx.write_bytes(b"this is plain text, not a protobuf ONNX model\n" * 4)
    return ModelFiles(
        add_one=add_constant(folder / "add_one.onnx", 1.0),
        add_two=add_constant(folder / "add_two.onnx", 2.0),
        add_ten=add_constant(folder / "add_ten.onnx", 10.0),
        nchw=channel_means_nchw(folder / "nchw.onnx"),
        nhwc=channel_means_nhwc_uint8(folder / "nhwc.onnx"),
        two_inputs=two_inputs(folder / "two_inputs.onnx"),
        all_types=identity_all_types(folder / "all_types.onnx"),
        matmul=matmul_chain(folder / "matmul.onnx"),
        sk_iris=sklearn_iris(folder / "sk_iris.onnx"),
        squeezenet=squeezenet(folder / "squeezenet.onnx"),
        not_onnx=not_onnx,
        large=add_constant(folder / "large.onnx", 3.0, width=4 * 1024 * 1024),
        tile=tile_rows(folder / "tile.onnx", 4096),
        slow_load=slow_to_load(folder / "slow_load.onnx"),
    )
