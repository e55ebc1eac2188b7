"""Client.infer against a real mesh: datatypes, several inputs, pinned versions, ObjectOutput."""

from __future__ import annotations

import numpy as np
import onnxruntime as ort
import pytest

from mlbuffet import Client, InferResult
from mlbuffet.protocol.errors import UnprocessableError
from tests.client.conftest import serving
from tests.onnx_models import IDENTITY_TYPES


@pytest.fixture
async def host(start_modelhost):
    return await start_modelhost()


def typed(datatype: str) -> np.ndarray:
    """Two rows of two elements of `datatype`, with values at the ends of its range."""
    if datatype == "BYTES":
        return np.array([[b"a", b""], ["\u00e9t\u00e9".encode(), b"\x00z"]], dtype=object)
    if datatype == "BOOL":
        return np.array([[True, False], [False, True]])
    from mlbuffet.protocol.tensors import DTYPES

    dtype = DTYPES[datatype]
    info = np.iinfo(dtype) if dtype.kind in "iu" else np.finfo(dtype)
    return np.array([[info.min, info.max], [0, 1]], dtype=dtype)


async def test_a_single_array_feeds_a_single_input_model_and_the_result_says_who_answered(
    client, upload, host, model_files
):
    await upload("add", model_files.add_one)
    await serving(host, "add")
    x = np.arange(8, dtype=np.float32).reshape(2, 4)
    result = await client.infer("add", x)
    assert isinstance(result, InferResult)
    assert list(result) == ["y"]
    np.testing.assert_array_equal(result["y"], x + 1)
    assert result["y"].dtype == np.float32
    assert (result.model, result.version, result.node) == ("add", 1, host.node_id)


async def test_every_datatype_comes_back_exactly_as_sent(client, upload, host, model_files):
    await upload("types", model_files.all_types)
    await serving(host, "types")
    inputs = {f"in_{t}": typed(t) for t in IDENTITY_TYPES}
    result = await client.infer("types", inputs)
    session = ort.InferenceSession(str(model_files.all_types), providers=["CPUExecutionProvider"])
    feed = {n: np.vectorize(bytes.decode)(v) if v.dtype == object else v for n, v in inputs.items()}
    names = [o.name for o in session.get_outputs()]
    expected = dict(zip(names, session.run(names, feed), strict=True))
    assert set(result) == {f"out_{t}" for t in IDENTITY_TYPES}
    for datatype in IDENTITY_TYPES:
        got = result[f"out_{datatype}"]
        if datatype == "BYTES":
            assert got.tolist() == inputs[f"in_{datatype}"].tolist()
        else:
            assert got.dtype == inputs[f"in_{datatype}"].dtype
            np.testing.assert_array_equal(got, expected[f"out_{datatype}"])


async def test_a_model_with_two_inputs_takes_a_map_and_can_return_one_output(
    client, upload, host, model_files
):
    await upload("pair", model_files.two_inputs)
    await serving(host, "pair")
    a = np.array([[1, 2], [3, 4]], dtype=np.float32)
    b = np.array([[10, 20], [30, 40]], dtype=np.float32)
    both = await client.infer("pair", {"a": a, "b": b})
    np.testing.assert_array_equal(both["sum"], a + b)
    np.testing.assert_array_equal(both["product"], a * b)
    only = await client.infer("pair", {"a": a, "b": b}, outputs=["product"])
    assert list(only) == ["product"]


async def test_one_array_for_a_model_with_two_inputs_is_422_naming_them(
    client, upload, host, model_files
):
    await upload("pair", model_files.two_inputs)
    with pytest.raises(UnprocessableError, match=r"takes 2 inputs \(a, b\)") as caught:
        await client.infer("pair", np.zeros((1, 2), dtype=np.float32))
    assert caught.value.status == 422


async def test_a_pinned_version_answers_while_another_is_the_default(
    client, upload, host, model_files
):
    await upload("add", model_files.add_one)
    await upload("add", model_files.add_ten)
    await serving(host, "add", version=2)
    x = np.zeros((1, 4), dtype=np.float32)
    default = await client.infer("add", x)
    pinned = await client.infer("add", {"x": x}, version=1)
    assert default.version == 2 and default["y"].tolist() == [[10.0] * 4]
    assert pinned.version == 1 and pinned["y"].tolist() == [[1.0] * 4]


async def test_sklearn_probabilities_come_back_as_plain_python(client, upload, host, seed_iris):
    await upload("iris", seed_iris)
    await serving(host, "iris")
    result = await client.infer("iris", np.array([[2, 5, 1, 4]], dtype=np.float32))
    assert result["output_label"].tolist() == [1]
    (probabilities,) = result["output_probability"]
    assert isinstance(probabilities, dict) and max(probabilities, key=probabilities.get) == 1


async def test_python_lists_are_arrays_in_numpys_own_dtype(client, upload, host, model_files):
    await upload("add", model_files.add_one)
    await serving(host, "add")
    # A list of floats is float64, which the FP32 model refuses: the client never casts.
    with pytest.raises(UnprocessableError):
        await client.infer("add", [[1.0, 2.0, 3.0, 4.0]])
    result = await client.infer("add", np.array([[1.0, 2.0, 3.0, 4.0]], dtype=np.float32))
    assert result["y"].tolist() == [[2.0, 3.0, 4.0, 5.0]]


async def test_a_client_can_wrap_a_connection_it_does_not_own(nc, upload, host, model_files):
    await upload("add", model_files.add_one)
    await serving(host, "add")
    async with Client(nc) as borrowed:
        result = await borrowed.infer("add", np.ones((1, 4), dtype=np.float32))
    assert result["y"].tolist() == [[2.0] * 4]
    assert nc.is_connected
