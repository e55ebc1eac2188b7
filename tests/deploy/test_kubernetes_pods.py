"""The pods of deploy/kubernetes, run as Docker containers the way a kubelet would run them.

There is no Kubernetes cluster here, so this is the nearest real thing: every container of the
rendered manifests (test_kubernetes.render, with make_secrets.py's secrets) runs from the image
built from this checkout, with the pod's command, its environment (Secrets and the pod name
resolved), its ConfigMap files mounted read-only, a tmpfs for each emptyDir and volume claim,
as user 10001 with no capabilities, no new privileges and a read-only root filesystem,
restarted when it exits as the kubelet would. DNS names stand in for the Services and the
StatefulSet's stable names (`nats`, `nats-0.nats-headless`, `gateway`). A client container then
asks every readiness probe of the manifests until each answers 200, checks that the three NATS
pods formed one JetStream cluster through the headless names, and uploads and predicts through
the gateway with the generated API key. Not Kubernetes: scheduling, volumes, the HPA and
Services' load balancing are not exercised (docs/deploy.md says so).
"""

from __future__ import annotations

import json
import re
import time
from pathlib import Path

import pytest

from tests.deploy.test_image import IRIS, build_image, docker, network  # noqa: F401
from tests.deploy.test_kubernetes import (
    Doc,
    containers,
    kube_dir,  # noqa: F401 - the rendered copy with fresh secrets
    render,
    resolved_env,
    workloads,
)
from tests.trainer.conftest import docker_image  # noqa: F401 - the base image fixture

pytestmark = pytest.mark.processes

IMAGE = "mlbuffet-kubernetes-test:latest"
"""Not test_image.py's tag: each test module's image is the one built from its own checkout."""

# Runs in a container on the pods' network: wait for every probe, check the NATS cluster, then
# upload and predict with the API key (bounded loops: the test fails after 90 s).
CLIENT = r"""
import json, sys, time, urllib.error, urllib.request

probes, key = json.loads(sys.argv[1]), sys.argv[2]

def call(request):
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            return response.status, response.read()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read()
    except OSError as exc:
        return None, repr(exc).encode()

deadline = time.monotonic() + 90
waiting = dict(probes)
while waiting:
    for name, url in list(waiting.items()):
        status, body = call(url)
        if status == 200:
            print(f"ready {name} after {90 - (deadline - time.monotonic()):.1f} s", flush=True)
            del waiting[name]
    if waiting and time.monotonic() > deadline:
        sys.exit(f"not ready: {sorted(waiting)}: {[call(u) for u in waiting.values()]}")
    time.sleep(0.5)

status, body = call("http://nats-0.nats-headless:8222/jsz")
print("jsz", json.dumps(json.loads(body).get("meta_cluster", {}).get("cluster_size")))

auth = {"Authorization": f"Bearer {key}"}
base = "http://gateway:8002/api/v1/models/iris"
print("without key", call(urllib.request.Request(base + "/information"))[0])
model = open("/iris.onnx", "rb").read()
boundary = "mlbuffet-test-boundary"
form = (
    f"--{boundary}\r\nContent-Disposition: form-data; name=\"path\"; filename=\"iris.onnx\"\r\n"
    "Content-Type: application/octet-stream\r\n\r\n"
).encode() + model + f"\r\n--{boundary}--\r\n".encode()
status, body = call(urllib.request.Request(base, data=form, method="PUT", headers={
    **auth, "Content-Type": f"multipart/form-data; boundary={boundary}"}))
print("upload", status, flush=True)
deadline = time.monotonic() + 60
while True:
    status, body = call(urllib.request.Request(
        base + "/prediction", data=json.dumps({"values": [2, 5, 1, 4]}).encode(),
        method="POST", headers={**auth, "Content-Type": "application/json"}))
    if status == 200 or time.monotonic() > deadline:
        break
    time.sleep(0.5)
print("prediction", status, json.dumps(json.loads(body).get("values")))
"""


@pytest.fixture(scope="module")
def k8s_image(docker_image: str) -> str:  # noqa: F811 - the imported base image fixture
    return build_image(IMAGE, docker_image)


def pod_names(workload: Doc) -> list[str]:
    """One pod per workload (the StatefulSet: all of its stable names)."""
    name = workload["metadata"]["name"]
    if workload["kind"] == "StatefulSet":
        return [f"{name}-{i}" for i in range(workload["spec"]["replicas"])]
    return [f"{name}-0"]


def aliases(docs: list[Doc], workload: Doc, pod: str) -> list[str]:
    """The DNS names a pod answers to: its name, its Services', its stable headless name."""
    labels = workload["spec"]["template"]["metadata"]["labels"]
    names = [pod]
    for service in (d for d in docs if d["kind"] == "Service"):
        if service["spec"]["selector"].items() <= labels.items():
            if service["spec"].get("clusterIP") == "None":
                names.append(f"{pod}.{service['metadata']['name']}")
            else:
                names.append(service["metadata"]["name"])
    return names


def run_args(docs: list[Doc], workload: Doc, pod: str, files: Path) -> list[str]:
    """`docker run` arguments for the pod's one container, as the manifests describe it."""
    spec = workload["spec"]["template"]["spec"]
    (container,) = containers(workload)
    context = container["securityContext"]
    assert context["readOnlyRootFilesystem"] and context["capabilities"]["drop"] == ["ALL"]
    user = f"{spec['securityContext']['runAsUser']}:{spec['securityContext']['runAsGroup']}"
    # restart: the kubelet restarts a pod's container that exits (restartPolicy Always): a role
    # started while the three NATS pods still elect their JetStream leader may time out once.
    args = ["--restart", "always", "--user", user, "--read-only", "--cap-drop", "ALL"]
    args += ["--security-opt", "no-new-privileges"]
    for name, value in resolved_env(docs, container, pod).items():
        args += ["--env", f"{name}={value}"]
    volumes = {v["name"]: v for v in spec.get("volumes", [])}
    claims = {c["metadata"]["name"] for c in workload["spec"].get("volumeClaimTemplates", [])}
    for mount in container.get("volumeMounts", []):
        volume = volumes.get(mount["name"], {})
        if "configMap" in volume:
            # A folder per pod, as the kubelet projects one: rewriting a file another
            # container is reading would hand it a half-written config.
            folder = files / pod / volume["configMap"]["name"]
            folder.mkdir(parents=True, exist_ok=True)
            folder.parent.chmod(0o755)
            folder.chmod(0o755)
            configmap = next(
                d
                for d in docs
                if d["kind"] == "ConfigMap" and d["metadata"]["name"] == volume["configMap"]["name"]
            )
            for key, text in configmap["data"].items():
                (folder / key).write_text(text)
                (folder / key).chmod(0o644)
            args += ["--volume", f"{folder}:{mount['mountPath']}:ro"]
        else:
            assert "emptyDir" in volume or mount["name"] in claims, mount
            args += ["--tmpfs", f"{mount['mountPath']}:rw,exec,uid=10001,gid=10001,mode=0770"]
    command = container["command"]
    return [*args, "--entrypoint", command[0], IMAGE, *command[1:]]


def probe_urls(docs: list[Doc]) -> dict[str, str]:
    urls = {}
    for workload in workloads(docs):
        (container,) = containers(workload)
        ports = {p["name"]: p["containerPort"] for p in container["ports"]}
        get = container["readinessProbe"]["httpGet"]
        for pod in pod_names(workload):
            urls[pod] = f"http://{pod}:{ports[get['port']]}{get['path']}"
    return urls


def test_the_pods_run_as_the_manifests_say_and_serve_a_prediction(
    k8s_image: str,
    kube_dir: Path,  # noqa: F811
    network: str,  # noqa: F811
    tmp_path: Path,
) -> None:
    docs = render(kube_dir)
    started = time.monotonic()
    pods = []
    for workload in workloads(docs):
        for pod in pod_names(workload):
            names = aliases(docs, workload, pod)
            alias_args = [a for name in names for a in ("--network-alias", name)]
            docker(
                "run", "-d", "--name", f"{network}-{pod}", "--hostname", pod,
                "--network", network, *alias_args, *run_args(docs, workload, pod, tmp_path),
            )  # fmt: skip
            pods.append(pod)
    key = re.search(r"API key 'ops' \([^)]*\): (\S+)", (kube_dir / "make_secrets.out").read_text())
    assert key, "make_secrets.py printed no key"
    client = docker(
        "run", "--rm", "--network", network, "--volume", f"{IRIS}:/iris.onnx:ro",
        "--entrypoint", "python3", k8s_image, "-c", CLIENT,
        json.dumps(probe_urls(docs)), key.group(1),
        timeout=240, check=False,
    )  # fmt: skip
    output = client.stdout
    if client.returncode != 0 or "prediction 200" not in output:
        logs = "\n".join(
            f"--- {pod}\n"
            + (lambda r: r.stdout[-1500:] + r.stderr[-1500:])(
                docker("logs", f"{network}-{pod}", check=False)
            )
            for pod in pods
        )
        pytest.fail(f"client failed:\n{output}{client.stderr[-3000:]}\n{logs}")
    print(output)
    restarts = {
        pod: docker("inspect", "--format", "{{.RestartCount}}", f"{network}-{pod}").stdout.strip()
        for pod in pods
    }
    print(f"container restarts: {restarts}")
    for pod, count in restarts.items():
        if count != "0":  # why, for the record (the test's outcome does not depend on it)
            logs = docker("logs", f"{network}-{pod}", check=False)
            print(f"--- {pod} exited before:\n{logs.stderr[-1500:]}")
    print(
        f"{len(pods)} pods up, probed and a prediction made in {time.monotonic() - started:.1f} s"
    )
    assert sorted(pods) == sorted(
        ["nats-0", "nats-1", "nats-2", "gateway-0", "modelhost-0", "trainer-0", "metrics-0"]
    )
    assert "jsz 3" in output  # one JetStream cluster of the three pods
    assert "without key 401" in output
    assert "upload 201" in output
    assert "prediction 200 [1]" in output
