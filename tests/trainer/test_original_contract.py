"""Training scripts written for the original MLBuffet run unmodified, on both backends.

The original's contract: `POST /api/v1/train/<model_name>` (later
`/train/<tag>/<model_name>`); the script is run with no argument, reads the
dataset as `dataset.csv` (the original renamed it so), and saves a file
named <model_name> in its working folder or below it, where the trainer
finds it. The job's inputs stay unchanged whatever the script tries, also
when the trainer runs as root.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import aiohttp
import pytest
from aiohttp.test_utils import TestClient

from mlbuffet.registry import Registry
from mlbuffet.training import JobStore
from tests.trainer.conftest import Submit, wait_for_state, whole_log
from tests.trainer.example_job import REQUIREMENTS

FINISHED = {"succeeded", "failed", "cancelled"}

# As a user of the original wrote it: no sys.argv, the original's dataset name, the model
# saved under the name given in the URL, in a folder of the script's choosing.
ORIGINAL_SCRIPT = """\
import os

import numpy as np
from skl2onnx import convert_sklearn
from skl2onnx.common.data_types import FloatTensorType
from sklearn.linear_model import LogisticRegression

data = np.loadtxt("dataset.csv", delimiter=",", skiprows=1)
features, labels = data[:, :4].astype(np.float32), data[:, 4].astype(int)
model = LogisticRegression(max_iter=1000).fit(features, labels)
onx = convert_sklearn(model, initial_types=[("float_input", FloatTensorType([None, 4]))])
os.makedirs("{folder}", exist_ok=True)
with open(os.path.join("{folder}", "{name}"), "wb") as f:
    f.write(onx.SerializeToString())
print("saved {name}", flush=True)
"""


@pytest.fixture(params=["process", "docker"])
async def trainer(request: pytest.FixtureRequest, start_trainer: Any) -> Any:
    if request.param == "docker":
        return await start_trainer(**request.getfixturevalue("docker_settings"))
    return await start_trainer(backend="process")


def original_form(iris_csv: Path, script: str) -> aiohttp.FormData:
    form = aiohttp.FormData()
    form.add_field("script", script.encode(), filename="my_training.py")
    form.add_field("requirements", REQUIREMENTS.encode(), filename="requirements.txt")
    form.add_field("dataset", iris_csv.read_bytes(), filename="iris.csv")
    return form


async def train(gateway: TestClient[Any, Any], path: str, form: aiohttp.FormData) -> dict[str, Any]:
    response = await gateway.post(path, data=form)
    accepted = await response.json()
    assert response.status == 202, accepted
    logs = await gateway.get(
        f"/api/v1/train/{accepted['job']}/logs", params={"follow": "1"}, timeout=300
    )
    log = await logs.text()
    status = await (await gateway.get(f"/api/v1/train/{accepted['job']}")).json()
    assert status["state"] == "succeeded", log
    return {**status, "log": log}


async def test_the_v1_route_trains_model_iris_from_a_script_that_writes_iris_onnx(
    trainer: Any, gateway: TestClient[Any, Any], iris_csv: Path, registry: Registry
) -> None:
    script = ORIGINAL_SCRIPT.format(folder=".", name="iris.onnx")
    status = await train(gateway, "/api/v1/train/iris.onnx", original_form(iris_csv, script))
    assert (status["model"], status["output_file"], status["version"]) == ("iris", "iris.onnx", 1)
    assert "saved iris.onnx" in status["log"]
    assert "iris.onnx: found in the working folder as iris.onnx" in status["log"]
    record = await registry.get("iris")
    assert record.default_version == 1
    assert record.versions[1].filename == "iris.onnx"


async def test_the_tag_route_finds_the_named_file_below_the_working_folder(
    trainer: Any, gateway: TestClient[Any, Any], iris_csv: Path, registry: Registry
) -> None:
    script = ORIGINAL_SCRIPT.format(folder="results/final", name="flowers.onnx")
    status = await train(
        gateway, "/api/v1/train/iris-tag/flowers.onnx", original_form(iris_csv, script)
    )
    assert (status["model"], status["output_file"]) == ("iris-tag", "flowers.onnx")
    assert "found in the working folder as results/final/flowers.onnx" in status["log"]
    assert (await registry.get("iris-tag")).versions[1].filename == "flowers.onnx"


async def test_a_model_at_the_first_argument_wins_over_one_in_the_working_folder(
    trainer: Any, submit: Submit, jobs: JobStore, registry: Registry
) -> None:
    # Both places hold a model.onnx: the one at sys.argv[1] is the job's output; the other,
    # garbage, is never looked at (else the job would fail: it is no ONNX model).
    script = (
        "import shutil, sys\n"
        "open('model.onnx', 'wb').write(b'not a model')\n"
        + ORIGINAL_SCRIPT.format(folder="out", name="model.onnx")
        + "shutil.copyfile('out/model.onnx', sys.argv[1])\n"
    )
    accepted = await submit("both", script=script)
    record = await wait_for_state(jobs, accepted.job, FINISHED)
    log = await whole_log(jobs, accepted.job)
    assert record.state.value == "succeeded", log
    assert "found in the working folder" not in log
    assert (await registry.get("both")).default_version == 1


TAMPER = """\
import hashlib, os, subprocess, sys

inputs = os.environ["MLBUFFET_INPUT_DIR"]
before = hashlib.sha256(open("dataset.csv", "rb").read()).hexdigest()
print("uid", os.getuid(), flush=True)
attempts = {
    "write through the link": lambda: open("iris.csv", "a").write("9,9,9,9,9\\n"),
    "write the input": lambda: open(os.path.join(inputs, "iris.csv"), "a").write("9\\n"),
    "chmod the input": lambda: os.chmod(os.path.join(inputs, "iris.csv"), 0o666),
    "chmod the folder": lambda: os.chmod(inputs, 0o777),
    "delete the input": lambda: os.unlink(os.path.join(inputs, "iris.csv")),
    "rename the input": lambda: os.rename(os.path.join(inputs, "iris.csv"), "stolen.csv"),
    "add a file": lambda: open(os.path.join(inputs, "extra.csv"), "w").write("x"),
    "remount read-write": lambda: subprocess.run(
        ["mount", "-o", "remount,rw,bind", inputs], check=True, capture_output=True
    ),
    "unmount": lambda: subprocess.run(["umount", inputs], check=True, capture_output=True),
}
for what, attempt in attempts.items():
    try:
        attempt()
    except (OSError, subprocess.CalledProcessError) as exc:
        print(f"REFUSED {what}: {exc}", flush=True)
    else:
        print(f"CHANGED {what}", flush=True)
after = hashlib.sha256(open(os.path.join(inputs, "iris.csv"), "rb").read()).hexdigest()
print("inputs", "unchanged" if after == before else "CHANGED", flush=True)
with open("scratch.txt", "w") as f:
    f.write("the working folder is writable")
print("scratch written", flush=True)
"""


async def test_the_inputs_stay_unchanged_whatever_the_script_tries_even_as_root(
    trainer: Any, submit: Submit, jobs: JobStore
) -> None:
    accepted = await submit("tamper", script=TAMPER, requirements="")
    await wait_for_state(jobs, accepted.job, FINISHED)
    log = await whole_log(jobs, accepted.job)
    assert "CHANGED" not in log, log
    assert log.count("REFUSED") == 9, log
    assert "inputs unchanged" in log
    assert "scratch written" in log
