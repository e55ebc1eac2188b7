"""How the trainer finds a model that a script saved by name in its working folder, as the original's did."""

from __future__ import annotations

import os
from pathlib import Path

from actors.trainer.find_output import candidates, collect


def make(folder: Path, relative: str, content: bytes = b"onnx") -> Path:
    path = folder / relative
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(content)
    return path


def test_the_shallowest_file_with_the_name_is_taken_then_the_first_by_path(tmp_path: Path) -> None:
    work = tmp_path / "work"
    make(work, "b/deep/iris.onnx")
    make(work, "z/iris.onnx")
    make(work, "a/iris.onnx")
    make(work, "a/other.onnx")
    assert [p.as_posix() for p in candidates(work, "iris.onnx")] == [
        "a/iris.onnx",
        "z/iris.onnx",
        "b/deep/iris.onnx",
    ]


def test_links_are_not_outputs_and_linked_folders_are_not_searched(tmp_path: Path) -> None:
    inputs, work = tmp_path / "input", tmp_path / "work"
    make(inputs, "iris.onnx", b"an input, not an output")
    work.mkdir()
    (work / "iris.onnx").symlink_to(inputs / "iris.onnx")
    (work / "linked").symlink_to(inputs, target_is_directory=True)
    assert candidates(work, "iris.onnx") == []
    assert collect(work, tmp_path / "out.onnx") is None
    assert not (tmp_path / "out.onnx").exists()


def test_collect_moves_the_found_file_to_the_output_path_and_says_from_where(
    tmp_path: Path,
) -> None:
    work, output = tmp_path / "work", tmp_path / "output"
    output.mkdir()
    make(work, "models/iris.onnx", b"the model")
    make(work, "models/old/iris.onnx", b"an older one")
    note = collect(work, output / "iris.onnx")
    assert (output / "iris.onnx").read_bytes() == b"the model"
    assert not (work / "models/iris.onnx").exists()
    assert note == (
        "[trainer] iris.onnx: found in the working folder as models/iris.onnx "
        "(the shallowest of 2 files with that name)"
    )


def test_an_output_already_at_the_output_path_is_left_alone(tmp_path: Path) -> None:
    work, output = tmp_path / "work", tmp_path / "output"
    output.mkdir()
    make(output, "iris.onnx", b"written at sys.argv[1]")
    make(work, "iris.onnx", b"a scratch copy")
    assert collect(work, output / "iris.onnx") is None
    assert (output / "iris.onnx").read_bytes() == b"written at sys.argv[1]"
    assert os.path.exists(work / "iris.onnx")
