"""The deploy image, built with the real Docker daemon, serves a prediction.

nats-server, a gateway and a modelhost run as containers of the one image on a network of
their own; a client container on that network uploads the seed iris model and asks for a
prediction, as a user of `docker compose up` would. No port is published on the host.
The base image is the Debian one scripts/trainer-test-image builds (there is no registry to pull
python:3.12-slim from here); docker's layer cache makes a second build take seconds.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from mlbuffet.natsd.users import ROLE_NAMES, password_variable
from tests.trainer.conftest import docker_image  # noqa: F401 - the base image fixture

pytestmark = pytest.mark.processes

REPO = Path(__file__).resolve().parents[2]
BUILD_SCRIPT = REPO / "deploy" / "build-image"
COMPOSE_FILE = REPO / "deploy" / "docker-compose.yml"
IRIS = REPO / "tests" / "fixtures" / "seed" / "iris.onnx"
IMAGE = "mlbuffet-deploy-test:latest"

# Runs inside a container of the image: upload the model, then predict, each retried until the
# gateway listens and a modelhost serves the model (bounded loops: 60 s, then the test fails).
CLIENT = r"""
import json, sys, time, urllib.error, urllib.request

BASE = "http://gateway:8002/api/v1/models/iris"

def call(request):
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read().decode(errors="replace")
    except OSError as exc:
        return None, repr(exc)

def until_ok(make, what):
    deadline = time.monotonic() + 60
    while True:
        status, body = call(make())
        if status in (200, 201):
            return body
        if time.monotonic() > deadline:
            sys.exit(f"{what}: {status} {body}")
        time.sleep(0.5)

model = open("/iris.onnx", "rb").read()
boundary = "mlbuffet-test-boundary"
form = (
    f"--{boundary}\r\nContent-Disposition: form-data; name=\"path\"; filename=\"iris.onnx\"\r\n"
    "Content-Type: application/octet-stream\r\n\r\n"
).encode() + model + f"\r\n--{boundary}--\r\n".encode()
until_ok(lambda: urllib.request.Request(
    BASE, data=form, method="PUT",
    headers={"Content-Type": f"multipart/form-data; boundary={boundary}"}), "upload")
answer = until_ok(lambda: urllib.request.Request(
    BASE + "/prediction", data=json.dumps({"values": [2, 5, 1, 4]}).encode(), method="POST",
    headers={"Content-Type": "application/json"}), "prediction")
print(json.dumps(answer["values"]))
"""


def docker(
    *args: str, timeout: float = 120, check: bool = True
) -> subprocess.CompletedProcess[str]:
    result = subprocess.run(
        ["docker", *args], capture_output=True, text=True, timeout=timeout, check=False
    )
    if check and result.returncode != 0:
        pytest.fail(f"docker {' '.join(args)} failed:\n{result.stderr[-3000:]}")
    return result


def build_image(tag: str, base_image: str) -> str:
    """deploy/build-image from this checkout; fails the test with the build's own error."""
    started = time.monotonic()
    build = subprocess.run(
        [str(BUILD_SCRIPT), tag, base_image],
        capture_output=True,
        text=True,
        timeout=900,
        check=False,
        env={**os.environ, "PYTHON": sys.executable},
    )
    if build.returncode != 0:
        pytest.fail(f"deploy/build-image failed:\n{build.stderr[-5000:]}")
    print(f"deploy image {tag} on {base_image} built in {time.monotonic() - started:.1f} s")
    return tag


@pytest.fixture(scope="module")
def image(request: pytest.FixtureRequest) -> str:
    """Our image on the trainer tests' base image (built once per machine by scripts/prepare-test-machine)."""
    return build_image(IMAGE, request.getfixturevalue("docker_image"))


@pytest.fixture
def network() -> Iterator[str]:
    """A user-defined network; every container on it is removed with it, whatever happens."""
    name = f"mlbuffet-test-{uuid.uuid4().hex[:10]}"
    docker("network", "create", name)
    try:
        yield name
    finally:
        attached = docker("ps", "-aq", "--filter", f"network={name}", check=False).stdout.split()
        if attached:
            docker("rm", "-f", *attached, check=False)
        docker("network", "rm", name, check=False)


def test_image_serves_a_prediction(image: str, network: str) -> None:
    def start(name: str, *args: str) -> None:
        docker(
            "run",
            "-d",
            "--name",
            f"{network}-{name}",
            "--network",
            network,
            "--network-alias",
            name,
            *args,
        )

    started = time.monotonic()
    start("nats", "--entrypoint", "nats-server", image, "-js", "-sd", "/data/jetstream")
    nats = ["--env", "MLBUFFET_NATS=nats://nats:4222"]
    # --insecure: no API keys, on a network only these containers reach (no published port).
    start("gateway", *nats, image, "gateway", "--host", "0.0.0.0", "--insecure")
    start("modelhost", *nats, image, "modelhost")
    client = docker(
        "run",
        "--rm",
        "--network",
        network,
        "--volume",
        f"{IRIS}:/iris.onnx:ro",
        "--entrypoint",
        "python3",
        image,
        "-c",
        CLIENT,
        timeout=150,
        check=False,
    )
    if client.returncode != 0:
        logs = "\n".join(
            f"--- {name}\n" + docker("logs", f"{network}-{name}", check=False).stderr[-2000:]
            for name in ("nats", "gateway", "modelhost")
        )
        pytest.fail(f"client failed:\n{client.stdout}{client.stderr[-3000:]}\n{logs}")
    assert client.stdout.strip().splitlines()[-1] == "[1]"
    print(
        f"nats + gateway + modelhost up and a prediction made in {time.monotonic() - started:.1f} s"
    )


def test_image_runs_as_a_user_without_privileges(image: str) -> None:
    result = docker("run", "--rm", "--entrypoint", "id", image, "-u")
    assert result.stdout.strip() != "0"


def test_compose_file_is_valid() -> None:
    """docker-compose (v1, Debian's package) or the compose plugin parses and resolves it."""
    secrets = {password_variable(role): f"p{role}" for role in ROLE_NAMES}
    env = {**os.environ, **secrets, "MLBUFFET_API_KEYS": "k", "GRAFANA_ADMIN_PASSWORD": "g"}
    command = (
        ["docker-compose"]
        if subprocess.run(
            ["docker", "compose", "version"], capture_output=True, check=False
        ).returncode
        != 0
        else ["docker", "compose"]
    )
    result = subprocess.run(
        [*command, "--file", str(COMPOSE_FILE), "config"],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
        env=env,
    )
    assert result.returncode == 0, result.stderr
    # Every role password nats-server's auth.conf reads is handed to every node.
    for variable in secrets:
        assert result.stdout.count(f"{variable}: p") == 3, variable
    for service in (
        "nats-1",
        "nats-2",
        "nats-3",
        "gateway",
        "modelhost",
        "trainer",
        "metrics",
        "prometheus",
        "grafana",
    ):
        assert f"  {service}:" in result.stdout
