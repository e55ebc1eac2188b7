"""A full restart of `mlbuffet up` on the same data dir keeps the whole registry."""

from __future__ import annotations

import hashlib
import signal
from pathlib import Path
from typing import Any

import pytest

from tests import onnx_models
from tests.cli.conftest import StartUp, Up
from tests.cli.rest import call, ok, predict

pytestmark = pytest.mark.processes


def snapshot(rest: str) -> dict[str, Any]:
    """Everything the REST API says about the registry, minus the per-reply envelope."""
    views = {"all": ok("GET", f"{rest}/api/v1/models/information")}
    for name in ok("GET", f"{rest}/api/v1/models")["model_list"]:
        views[f"{name}/information"] = ok("GET", f"{rest}/api/v1/models/{name}/information")
        info = views[f"{name}/information"]
        for version in info["tag_list_versions"]:
            views[f"{name}:{version}"] = ok("GET", f"{rest}/api/v1/models/{name}:{version}")
    return views


def download_sha256(rest: str, ref: str) -> str:
    status, body = call("GET", f"{rest}/api/v1/models/{ref}/download")
    assert status == 200 and isinstance(body, bytes), (status, body)
    return hashlib.sha256(body).hexdigest()


def stop(up: Up) -> None:
    up.signal(signal.SIGTERM)
    assert up.wait() == 0, up.err()


def test_a_restart_keeps_every_model_version_default_and_description(
    start_up: StartUp, tmp_path: Path, seed_iris: Path
) -> None:
    data = tmp_path / "data"
    first = start_up("--modelhosts", "1", data_dir=data)
    rest = first.rest
    # iris:2 is the original MLBuffet's iris.onnx; it becomes the default on upload...
    uploaded = ok(
        "PUT",
        f"{rest}/api/v1/models/iris",
        files={"path": seed_iris},
        fields={"model_description": "the original MLBuffet iris"},
    )
    assert (uploaded["version"], uploaded["default_version"]) == (2, 2)
    # ...then the default goes back to 1 and the model gets a new description.
    ok("POST", f"{rest}/api/v1/models/iris/default", {"default": 1})
    ok("POST", f"{rest}/api/v1/models/iris", {"model_description": "iris, described again"})
    add_one = onnx_models.add_constant(tmp_path / "add_one.onnx", 1.0)
    ok("PUT", f"{rest}/api/v1/models/add_one", files={"path": add_one})
    # A deleted sample model must not come back: samples are registered on first start only.
    ok("DELETE", f"{rest}/api/v1/models/diabetes")
    before = snapshot(rest)
    assert sorted(before["all"]["model_list"], key=lambda m: m["model"]) == [
        {
            "model": "add_one",
            "description": "adds 1.0 to every element",
            "default_version": 1,
            "versions": [1],
        },
        {
            "model": "iris",
            "description": "iris, described again",
            "default_version": 1,
            "versions": [1, 2],
        },
    ]
    iris_v2 = download_sha256(rest, "iris:2")
    stop(first)

    second = start_up("--modelhosts", "1", data_dir=data)
    assert "registered on this first start" not in second.out()
    assert snapshot(second.rest) == before
    assert download_sha256(second.rest, "iris:2") == iris_v2
    assert iris_v2 == hashlib.sha256(seed_iris.read_bytes()).hexdigest()
    # Every version still answers: the default (our sample), the pinned seed model, add_one.
    assert predict(second.rest, "iris", [2, 5, 1, 4]) == [1]
    assert predict(second.rest, "iris:2", [2, 5, 1, 4]) == [1]
    assert predict(second.rest, "add_one", [1, 2, 3, 4]) == [[2, 3, 4, 5]]
    status, _ = call(
        "POST", f"{second.rest}/api/v1/models/diabetes/prediction", {"values": [0] * 10}
    )
    assert status == 404
