"""examples/iris runs as the README and docs/training.md show it, on a real mesh.

`mlbuffet train iris --script train.py --requirements requirements.txt
--dataset iris.csv --follow` against a real gateway, a real trainer (process
backend, the cached virtualenv of ~/.cache/mlbuffet/trainer) and a real
modelhost; then `mlbuffet predict` is answered by the version just trained.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from tests.cli.commands.conftest import cli, make_gateway, rest  # noqa: F401 - fixtures used here
from tests.conftest import eventually
from tests.trainer.conftest import start_trainer  # noqa: F401 - a fixture used here

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "iris"
SETOSA = [5.1, 3.5, 1.4, 0.2]
VIRGINICA = [6.9, 3.1, 5.4, 2.1]


@pytest.mark.processes
async def test_the_iris_example_trains_with_the_cli_and_its_model_answers(
    cli: Any,  # noqa: F811
    rest: list[str],  # noqa: F811
    start_trainer: Any,  # noqa: F811
    start_modelhost: Any,
) -> None:
    await start_modelhost()
    await start_trainer(backend="process")
    run = await cli(
        "train",
        "iris",
        "--script",
        str(EXAMPLE / "train.py"),
        "--requirements",
        str(EXAMPLE / "requirements.txt"),
        "--dataset",
        str(EXAMPLE / "iris.csv"),
        "--follow",
        *rest,
    )
    assert run.code == 0, run.err
    lines = run.out.splitlines()
    assert "training on 150 rows" in lines
    assert "accuracy 0.973" in lines
    assert lines[-1].endswith("succeeded: iris version 1 (the default version)"), run.out

    answers: list[Any] = []

    async def answered_by_version_1() -> bool:
        predicted = await cli(
            "predict", "iris", "--values", f"[{SETOSA}, {VIRGINICA}]", "--json", *rest
        )
        answers.append(predicted)
        return predicted.code == 0 and predicted.json()["version"] == 1

    await eventually(answered_by_version_1, timeout_s=60)
    outputs = answers[-1].json()["outputs"]
    assert outputs["label"] == [0, 2], outputs
