"""Model names, versions and references, checked before anything reaches NATS."""

from __future__ import annotations

import pytest

from mlbuffet.protocol.errors import BadRequestError
from mlbuffet.protocol.names import ModelRef, parse_model_name, parse_train_target, parse_version


@pytest.mark.parametrize(
    ("raw", "name"),
    [
        ("iris", "iris"),
        ("iris.onnx", "iris"),
        ("Iris_2-b", "Iris_2-b"),
        ("a" * 64, "a" * 64),
        ("a" * 64 + ".onnx", "a" * 64),
        ("information2", "information2"),
    ],
)
def test_valid_model_names_are_accepted_and_a_trailing_onnx_is_stripped(raw, name):
    assert parse_model_name(raw) == name


@pytest.mark.parametrize(
    "raw",
    [
        "",
        ".onnx",
        "a" * 65,
        "iris.v2",
        "iris*",
        "iris>",
        "iris model",
        "iris\n",
        "íris",
        "iris.onnx.onnx",
        "../iris",
        "iris/1",
    ],
    ids=repr,
)
def test_invalid_model_names_are_a_bad_request(raw):
    with pytest.raises(BadRequestError, match="invalid model name"):
        parse_model_name(raw)


@pytest.mark.parametrize("raw", ["information", "information.onnx"])
def test_the_reserved_name_information_is_a_bad_request(raw):
    with pytest.raises(BadRequestError, match="reserved"):
        parse_model_name(raw)


@pytest.mark.parametrize(
    ("model", "output_file", "target"),
    [
        ("iris", None, ("iris", "model.onnx")),
        # The original's first form, /train/<model_name>: the name is the file the script writes.
        ("iris.onnx", None, ("iris", "iris.onnx")),
        # The original's /train/<tag>/<model_name>: the tag names the model.
        ("iris-tag", "flowers.onnx", ("iris-tag", "flowers.onnx")),
        ("iris.onnx", "other.onnx", ("iris", "other.onnx")),
    ],
)
def test_a_training_target_is_a_model_and_the_file_its_script_writes(model, output_file, target):
    assert parse_train_target(model, output_file) == target


@pytest.mark.parametrize(("model", "output_file"), [("iris.pkl", None), ("iris", "../x.onnx")])
def test_a_bad_training_target_is_a_bad_request(model, output_file):
    with pytest.raises(BadRequestError, match="invalid"):
        parse_train_target(model, output_file)


@pytest.mark.parametrize(("raw", "version"), [("1", 1), (7, 7), ("2147483647", 2**31 - 1)])
def test_versions_are_positive_integers(raw, version):
    assert parse_version(raw) == version


@pytest.mark.parametrize(
    "raw", ["0", 0, "-1", -1, "1.5", "", "default", "٣", "2147483648", True, None, 1.0], ids=repr
)
def test_anything_else_is_not_a_version(raw):
    with pytest.raises(BadRequestError, match="invalid version"):
        parse_version(raw)


@pytest.mark.parametrize(
    ("raw", "ref"),
    [
        ("iris", ModelRef("iris")),
        ("iris.onnx", ModelRef("iris")),
        ("iris:3", ModelRef("iris", 3)),
        ("iris.onnx:3", ModelRef("iris", 3)),
        ("iris:default", ModelRef("iris")),
    ],
)
def test_model_references_name_a_model_and_maybe_a_version(raw, ref):
    assert ModelRef.parse(raw) == ref


@pytest.mark.parametrize(
    "raw", ["iris:", "iris:0", "iris:latest", "iris:3:4", ":3", "information:1", "iris:-2"]
)
def test_invalid_model_references_are_a_bad_request(raw):
    with pytest.raises(BadRequestError):
        ModelRef.parse(raw)


@pytest.mark.parametrize("raw", ["iris", "iris:3"])
def test_a_model_reference_prints_as_it_is_written(raw):
    assert str(ModelRef.parse(raw)) == raw
