"""The sample models MLBuffet registers on first start, and where their files are.

This module ships in the wheel as `mlbuffet.samples.catalog`, next to the
.onnx files, so it finds them through importlib.resources and never by a
path relative to the repository. It imports nothing heavier than pathlib:
`mlbuffet up` reads it without scikit-learn installed.
"""

from __future__ import annotations

from dataclasses import dataclass
from importlib import resources
from pathlib import Path


@dataclass(frozen=True, slots=True)
class Sample:
    """One sample model: its registry name, its file in this package, what it does."""

    name: str
    filename: str
    description: str


SAMPLES: tuple[Sample, ...] = (
    Sample(
        name="iris",
        filename="iris.onnx",
        description=(
            "Iris flower classifier (scikit-learn random forest, converted with skl2onnx). "
            "Input float_input: sepal length, sepal width, petal length, petal width in cm. "
            "Output: the class (0 setosa, 1 versicolor, 2 virginica) and its probabilities."
        ),
    ),
    Sample(
        name="diabetes",
        filename="diabetes.onnx",
        description=(
            "Diabetes progression regressor (scikit-learn gradient boosting, converted with "
            "skl2onnx). Input float_input: the 10 standardised features of scikit-learn's "
            "diabetes dataset (age, sex, bmi, bp, s1-s6). Output: disease progression one "
            "year later (about 25 to 350)."
        ),
    ),
)


EXAMPLES: tuple[Sample, ...] = (
    Sample(
        name="rgb_means",
        filename="rgb_means.onnx",
        description=(
            "The mean red, green and blue of a 224x224 image (no training: one ReduceMean). "
            "Input image: float32 NCHW [N, 3, 224, 224]. Output means: [N, 3]. Shipped for the "
            "README's image prediction; not registered by mlbuffet up."
        ),
    ),
)
"""Model files shipped beside the samples for the documentation's examples, never registered."""


class UnknownSampleError(KeyError):
    """No sample model has that name."""


def sample(name: str) -> Sample:
    """The sample or example model called `name`."""
    for candidate in (*SAMPLES, *EXAMPLES):
        if candidate.name == name:
            return candidate
    known = ", ".join(s.name for s in (*SAMPLES, *EXAMPLES))
    raise UnknownSampleError(f"no sample model named {name!r} (known: {known})")


def sample_path(name: str) -> Path:
    """The installed .onnx file of a sample model.

    The package is always installed as plain files (a pip install or an
    editable checkout), so the resource is a real path onnxruntime can open.
    """
    return Path(str(resources.files(__package__).joinpath(sample(name).filename)))
