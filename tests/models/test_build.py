"""The sample models: the committed files answer as documented, and the build script reproduces them."""

from __future__ import annotations

from pathlib import Path

import mlbuffet.samples
import numpy as np
import onnxruntime as ort
import pytest

from models import build

MAX_SAMPLE_BYTES = 100 * 1024


def session(path: Path) -> ort.InferenceSession:
    return ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])


def predict(path: Path, rows: list[list[float]] | np.ndarray) -> list[np.ndarray]:
    """Every output for `rows`, fed to the model's only input."""
    sess = session(path)
    (only,) = sess.get_inputs()
    return list(sess.run(None, {only.name: np.asarray(rows, dtype=np.float32)}))


@pytest.fixture(scope="module")
def rebuilt(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    return build.build(tmp_path_factory.mktemp("samples"))


def test_every_sample_is_installed_and_small() -> None:
    names = [s.name for s in mlbuffet.samples.SAMPLES]
    assert names == ["iris", "diabetes"]
    assert [s.name for s in mlbuffet.samples.EXAMPLES] == ["rgb_means"]
    for name in [*names, "rgb_means"]:
        path = mlbuffet.samples.sample_path(name)
        assert path.is_file(), path
        assert 0 < path.stat().st_size < MAX_SAMPLE_BYTES


def test_unknown_sample_is_a_clear_error() -> None:
    with pytest.raises(
        mlbuffet.samples.UnknownSampleError, match="known: iris, diabetes, rgb_means"
    ):
        mlbuffet.samples.sample_path("mnist")


def test_committed_iris_answers_as_the_original_readme() -> None:
    path = mlbuffet.samples.sample_path("iris")
    labels, probabilities = predict(path, [list(row) for row in build.IRIS_EXAMPLES])
    assert labels.tolist() == [1, 0, 2]
    assert len(probabilities) == 3
    assert probabilities[0].keys() == {0, 1, 2}
    assert max(probabilities[0], key=probabilities[0].get) == 1


def test_committed_iris_has_the_seeds_signature() -> None:
    sess = session(mlbuffet.samples.sample_path("iris"))
    (inp,) = sess.get_inputs()
    assert (inp.name, inp.type, inp.shape) == ("float_input", "tensor(float)", [None, 4])
    assert [o.name for o in sess.get_outputs()] == ["output_label", "output_probability"]
    assert sess.get_outputs()[1].type == "seq(map(int64,tensor(float)))"


def test_committed_diabetes_predicts_the_documented_value() -> None:
    row0 = [0.0381, 0.0507, 0.0617, 0.0219, -0.0442, -0.0348, -0.0434, -0.0026, 0.0199, -0.0176]
    (progression,) = predict(mlbuffet.samples.sample_path("diabetes"), [row0])
    assert progression.shape == (1, 1)
    assert progression[0, 0] == pytest.approx(193.48, abs=0.01)


def test_committed_rgb_means_averages_each_colour_channel() -> None:
    image = np.zeros((2, 3, 224, 224), dtype=np.float32)
    image[0, 0], image[0, 1], image[0, 2] = 255.0, 128.0, 0.0
    image[1, :, :112] = 100.0  # the top half grey, the bottom black
    sess = session(mlbuffet.samples.sample_path("rgb_means"))
    (means,) = sess.run(None, {"image": image})
    assert means.tolist() == [[255.0, 128.0, 0.0], [50.0, 50.0, 50.0]]


def test_build_reproduces_the_committed_models(rebuilt: dict[str, Path]) -> None:
    features, _ = build.diabetes_data()
    iris_rows = [list(row) for row in build.IRIS_EXAMPLES] + [
        [4.9, 2.5, 4.5, 1.7],
        [7.7, 2.6, 6.9, 2.3],
    ]
    images = np.random.default_rng(0).uniform(0, 255, (4, 3, 224, 224)).astype(np.float32)
    checks = {"iris": np.asarray(iris_rows), "diabetes": features, "rgb_means": images}
    for name, rows in checks.items():
        committed = predict(mlbuffet.samples.sample_path(name), rows)
        fresh = predict(rebuilt[name], rows)
        assert np.array_equal(committed[0], fresh[0]), name
        if name == "iris":
            assert committed[1] == fresh[1]


def test_build_refuses_a_model_that_answers_differently(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(build.IRIS_EXAMPLES, (2.0, 5.0, 1.0, 4.0), 2)
    with pytest.raises(build.BuildCheckError, match="iris answers"):
        build.build_iris()
