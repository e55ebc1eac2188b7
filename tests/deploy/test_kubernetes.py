"""deploy/kubernetes renders, is valid Kubernetes, and its parts fit each other and the code.

The kustomization is rendered here in Python (the subset of kustomize it uses: resources,
components, namespace, file and env generators with stable names; an unknown key fails the
test), with the secrets make_secrets.py writes. Every document is validated against the
Kubernetes 1.30 schemas of kubernetes-validate in strict mode (an unknown field is an error),
but the ServiceMonitor, a CRD the schemas do not know, which is checked by hand. Then the
cross references a schema cannot see: selectors, names of Secrets and ConfigMaps and their
keys, probe ports and paths, the one image, the NATS URLs, and every MLBUFFET_* variable,
which the role it is given to must read and accept (its own argument parser is run on it).
"""

from __future__ import annotations

import base64
import copy
import os
import re
import shutil
import subprocess
import sys
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import kubernetes_validate
import pytest
import yaml

from actors.metrics.__main__ import parse_args as metrics_args
from actors.modelhost.__main__ import parse_args as modelhost_args
from actors.trainer.__main__ import parse_args as trainer_args
from gateway.__main__ import parse_args as gateway_args
from gateway.routes import ROUTES
from mlbuffet.apikeys import KeyRing, Scope
from mlbuffet.cli.main import ROLES
from mlbuffet.natsd.server import nats_server_binary
from mlbuffet.natsd.users import ROLE_NAMES, deploy_config, password_variable
from mlbuffet.roles.health_listener import LIVE_PATH, READY_PATH

KUBERNETES_VERSION = "1.30"
REPO = Path(__file__).resolve().parents[2]
KUBE = REPO / "deploy" / "kubernetes"
IMAGE = "mlbuffet:latest"
CRD_KINDS = {"ServiceMonitor"}
CLUSTER_SCOPED = {"Namespace"}
KUSTOMIZATION_KEYS = {
    "apiVersion",
    "kind",
    "namespace",
    "resources",
    "components",
    "configMapGenerator",
    "secretGenerator",
    "generatorOptions",
}
WORKLOADS = {"Deployment", "StatefulSet"}
PARSERS = {
    "gateway": gateway_args,
    "modelhost": modelhost_args,
    "trainer": trainer_args,
    "metrics": metrics_args,
}

Doc = dict[str, Any]


# -- a renderer for the subset of kustomize the manifests use ----------------------------------


def render(directory: Path) -> list[Doc]:
    kustomization = yaml.safe_load((directory / "kustomization.yaml").read_text())
    unknown = set(kustomization) - KUSTOMIZATION_KEYS
    assert not unknown, f"{directory}: kustomization keys this renderer does not know: {unknown}"
    docs: list[Doc] = []
    for entry in kustomization.get("resources", []):
        path = directory / entry
        docs += render(path) if path.is_dir() else load_documents(path)
    for entry in kustomization.get("components", []):
        docs += render(directory / entry)
    generated = [configmap(directory, g) for g in kustomization.get("configMapGenerator", [])]
    generated += [secret(directory, g) for g in kustomization.get("secretGenerator", [])]
    if generated:
        options = kustomization.get("generatorOptions", {})
        assert options.get("disableNameSuffixHash") is True, "generated names are not hashed here"
    docs += generated
    namespace = kustomization.get("namespace")
    if namespace:
        for doc in docs:
            if doc["kind"] not in CLUSTER_SCOPED:
                doc.setdefault("metadata", {})["namespace"] = namespace
    return docs


def load_documents(path: Path) -> list[Doc]:
    return [d for d in yaml.safe_load_all(path.read_text()) if d is not None]


def configmap(directory: Path, generator: Doc) -> Doc:
    assert set(generator) <= {"name", "files"}, generator
    data = {Path(f).name: (directory / f).read_text() for f in generator["files"]}
    return {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": {"name": generator["name"]},
        "data": data,
    }


def secret(directory: Path, generator: Doc) -> Doc:
    assert set(generator) <= {"name", "envs"}, generator
    data = {}
    for env_file in generator["envs"]:
        for key, value in read_env_file(directory / env_file).items():
            data[key] = base64.b64encode(value.encode()).decode()
    return {
        "apiVersion": "v1",
        "kind": "Secret",
        "metadata": {"name": generator["name"]},
        "type": "Opaque",
        "data": data,
    }


def read_env_file(path: Path) -> dict[str, str]:
    values = {}
    for line in path.read_text().splitlines():
        if line.strip() and not line.lstrip().startswith("#"):
            key, _, value = line.partition("=")
            values[key.strip()] = value
    return values


# -- fixtures -------------------------------------------------------------------------------------


def make_secrets(folder: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, str(folder / "make_secrets.py")],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


@pytest.fixture(scope="module")
def kube_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A copy of deploy/kubernetes with fresh secrets from make_secrets.py."""
    copied = tmp_path_factory.mktemp("kube") / "kubernetes"
    shutil.copytree(KUBE, copied, ignore=shutil.ignore_patterns("*.env"))
    made = make_secrets(copied)
    assert made.returncode == 0, made.stderr
    (copied / "make_secrets.out").write_text(made.stdout)  # the API key, printed once
    return copied


@pytest.fixture(scope="module")
def docs(kube_dir: Path) -> list[Doc]:
    return render(kube_dir)


def find(docs: list[Doc], kind: str, name: str) -> Doc:
    found = [d for d in docs if d["kind"] == kind and d["metadata"]["name"] == name]
    assert len(found) == 1, f"{kind}/{name}: {len(found)} found"
    return found[0]


def workloads(docs: list[Doc]) -> Iterator[Doc]:
    return (d for d in docs if d["kind"] in WORKLOADS)


def containers(workload: Doc) -> list[Doc]:
    return list(workload["spec"]["template"]["spec"]["containers"])


def role_of(container: Doc) -> str | None:
    command = container["command"]
    return command[1] if command[0] == "mlbuffet" else None


def secret_values(docs: list[Doc], name: str) -> dict[str, str]:
    data = find(docs, "Secret", name)["data"]
    return {k: base64.b64decode(v).decode() for k, v in data.items()}


def resolved_env(docs: list[Doc], container: Doc, pod_name: str = "pod-0") -> dict[str, str]:
    """The container's environment as the kubelet would give it."""
    environ: dict[str, str] = {}
    for ref in container.get("envFrom", []):
        environ.update(secret_values(docs, ref["secretRef"]["name"]))
    for var in container.get("env", []):
        if "value" in var:
            environ[var["name"]] = var["value"]
        elif "secretKeyRef" in var["valueFrom"]:
            ref = var["valueFrom"]["secretKeyRef"]
            environ[var["name"]] = secret_values(docs, ref["name"])[ref["key"]]
        else:
            assert var["valueFrom"]["fieldRef"]["fieldPath"] == "metadata.name", var
            environ[var["name"]] = pod_name
    return environ


class RecordingEnviron(Mapping[str, str]):
    """An empty environment that remembers every name a parser looks up."""

    def __init__(self) -> None:
        self.asked: set[str] = set()

    def __getitem__(self, key: str) -> str:
        self.asked.add(key)
        raise KeyError(key)

    def get(self, key: str, default: Any = None) -> Any:  # type: ignore[override]
        self.asked.add(key)
        return default

    def __contains__(self, key: object) -> bool:
        self.asked.add(str(key))
        return False

    def __iter__(self) -> Iterator[str]:
        return iter(())

    def __len__(self) -> int:
        return 0


def variables_read_by(role: str) -> set[str]:
    environ = RecordingEnviron()
    PARSERS[role]([], environ)
    return {name for name in environ.asked if name.startswith("MLBUFFET_")}


# -- schemas --------------------------------------------------------------------------------------


def test_the_manifests_hold_every_part(docs: list[Doc]):
    kinds = sorted((d["kind"], d["metadata"]["name"]) for d in docs)
    assert kinds == sorted(
        [
            ("Namespace", "mlbuffet"),
            ("ConfigMap", "nats-config"),
            ("Secret", "nats-passwords"),
            ("Secret", "gateway-api-keys"),
            ("Service", "nats"),
            ("Service", "nats-headless"),
            ("StatefulSet", "nats"),
            ("PodDisruptionBudget", "nats"),
            ("Service", "gateway"),
            ("Deployment", "gateway"),
            ("Deployment", "modelhost"),
            ("HorizontalPodAutoscaler", "modelhost"),
            ("Deployment", "trainer"),
            ("Service", "metrics"),
            ("Deployment", "metrics"),
        ]
    )
    assert all(
        d["metadata"].get("namespace") == "mlbuffet" for d in docs if d["kind"] != "Namespace"
    )


def test_every_document_is_valid_kubernetes_in_strict_mode(docs: list[Doc]):
    checked = []
    for doc in docs:
        version = kubernetes_validate.validate(doc, KUBERNETES_VERSION, strict=True)
        checked.append(f"{doc['kind']}/{doc['metadata']['name']}")
        assert version == KUBERNETES_VERSION
    print(f"\n{len(checked)} documents valid for Kubernetes {KUBERNETES_VERSION}: {checked}")


@pytest.mark.parametrize(
    "breakage",
    ["an unknown field", "a wrong type", "a missing required field"],
)
def test_the_validation_catches_a_broken_manifest(docs: list[Doc], breakage: str):
    """The check above can fail: a copy of the gateway Deployment, broken three ways."""
    broken = copy.deepcopy(find(docs, "Deployment", "gateway"))
    spec = broken["spec"]
    if breakage == "an unknown field":
        spec["replica"] = 2
    elif breakage == "a wrong type":
        spec["replicas"] = "two"
    else:
        del spec["template"]["spec"]["containers"][0]["name"]
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(broken, KUBERNETES_VERSION, strict=True)


# -- cross references -----------------------------------------------------------------------------


def test_every_service_selects_the_pods_of_one_workload_on_ports_they_declare(docs: list[Doc]):
    for service in (d for d in docs if d["kind"] == "Service"):
        selector = service["spec"]["selector"]
        selected = [
            w
            for w in workloads(docs)
            if selector.items() <= w["spec"]["template"]["metadata"]["labels"].items()
        ]
        assert len(selected) == 1, f"Service {service['metadata']['name']} selects {selected}"
        declared = {p["name"] for c in containers(selected[0]) for p in c.get("ports", [])}
        for port in service["spec"]["ports"]:
            assert port["targetPort"] in declared, (service["metadata"]["name"], port)


def test_every_workload_selector_matches_its_own_pod_labels(docs: list[Doc]):
    for workload in workloads(docs):
        labels = workload["spec"]["template"]["metadata"]["labels"]
        assert workload["spec"]["selector"]["matchLabels"].items() <= labels.items()


def test_every_configmap_and_secret_referenced_exists_with_the_key(docs: list[Doc]):
    names = {(d["kind"], d["metadata"]["name"]): d for d in docs}
    for workload in workloads(docs):
        pod = workload["spec"]["template"]["spec"]
        for volume in pod.get("volumes", []):
            if "configMap" in volume:
                assert ("ConfigMap", volume["configMap"]["name"]) in names
            if "secret" in volume:
                assert ("Secret", volume["secret"]["secretName"]) in names
        for container in pod["containers"]:
            for ref in container.get("envFrom", []):
                assert ("Secret", ref["secretRef"]["name"]) in names
            for var in container.get("env", []):
                ref = var.get("valueFrom", {}).get("secretKeyRef")
                if ref:
                    assert ref["key"] in names[("Secret", ref["name"])]["data"], ref


def test_probes_use_declared_ports_and_real_public_endpoints(docs: list[Doc]):
    public_gateway_paths = {r.path for r in ROUTES if r.method == "GET" and r.scope is Scope.PUBLIC}
    endpoints = {
        "gateway": public_gateway_paths,
        "modelhost": {LIVE_PATH, READY_PATH},
        "trainer": {LIVE_PATH, READY_PATH},
        "metrics": {"/metrics"},
    }
    for workload in workloads(docs):
        for container in containers(workload):
            ports = {p["name"]: p["containerPort"] for p in container.get("ports", [])}
            probes = [container[k] for k in ("livenessProbe", "readinessProbe") if k in container]
            assert len(probes) == 2, f"{workload['metadata']['name']}: liveness and readiness"
            for probe in [*probes, container.get("startupProbe")]:
                if probe is None:
                    continue
                get = probe["httpGet"]
                assert get["port"] in ports, (workload["metadata"]["name"], get)
                role = role_of(container)
                if role is not None:
                    assert get["path"] in endpoints[role], (role, get["path"])
                else:
                    assert get["path"].startswith("/healthz"), get  # nats-server's own


def test_the_health_listeners_listen_where_the_probes_look(docs: list[Doc]):
    """The role's own parser, fed the container's environment, puts the listener on the port."""
    for name in ("modelhost", "trainer"):
        container = containers(find(docs, "Deployment", name))[0]
        config, _ = PARSERS[name]([], resolved_env(docs, container))
        assert config.health.host == "0.0.0.0"
        assert config.health.port == next(
            p["containerPort"] for p in container["ports"] if p["name"] == "health"
        )


def test_the_autoscaler_scales_the_modelhosts_on_cpu_they_request(docs: list[Doc]):
    hpa = find(docs, "HorizontalPodAutoscaler", "modelhost")
    target = hpa["spec"]["scaleTargetRef"]
    assert (target["apiVersion"], target["kind"], target["name"]) == (
        "apps/v1",
        "Deployment",
        "modelhost",
    )
    assert [m["resource"]["name"] for m in hpa["spec"]["metrics"]] == ["cpu"]
    assert 1 <= hpa["spec"]["minReplicas"] < hpa["spec"]["maxReplicas"]
    host = containers(find(docs, "Deployment", "modelhost"))[0]
    assert host["resources"]["requests"]["cpu"], "a CPU utilisation needs a CPU request"


def test_one_image_everywhere_and_the_command_is_the_role(docs: list[Doc]):
    roles = set()
    for workload in workloads(docs):
        for container in containers(workload):
            assert container["image"] == IMAGE
            assert container["imagePullPolicy"] == "IfNotPresent"  # `kind load` images work
            role = role_of(container)
            if role is None:
                assert container["command"][0] == "nats-server"
            else:
                assert container["command"] == ["mlbuffet", role] and role in ROLES
                assert container["name"] == workload["metadata"]["name"] == role
                roles.add(role)
    assert roles == set(PARSERS)


def test_the_roles_connect_to_the_nats_service_as_their_own_user(docs: list[Doc]):
    client = find(docs, "Service", "nats")
    client_port = next(p["port"] for p in client["spec"]["ports"] if p["name"] == "client")
    for workload in workloads(docs):
        for container in containers(workload):
            role = role_of(container)
            if role is None:
                continue
            config, _ = PARSERS[role]([], resolved_env(docs, container))
            for url in config.nats.urls:
                host, port = re.fullmatch(r"nats://([^:/]+):(\d+)", url).groups()  # type: ignore[union-attr]
                assert (host, int(port)) == ("nats", client_port), url
            assert config.nats.user == role
            passwords = secret_values(docs, "nats-passwords")
            assert config.nats.password == passwords[password_variable(role)]


def test_every_mlbuffet_variable_is_one_the_role_reads(docs: list[Doc]):
    """A misspelt variable would be ignored silently: each role's parser must ask for it."""
    for workload in workloads(docs):
        for container in containers(workload):
            given = {
                v["name"] for v in container.get("env", []) if v["name"].startswith("MLBUFFET_")
            }
            role = role_of(container)
            if role is None:  # nats-server reads the passwords auth.conf names
                given |= set(secret_values(docs, container["envFrom"][0]["secretRef"]["name"]))
                assert given == {password_variable(r) for r in ROLE_NAMES}
                continue
            unread = given - variables_read_by(role)
            assert not unread, f"{role} does not read {sorted(unread)}"


def test_every_role_accepts_its_environment(docs: list[Doc]):
    """The role's own parser and config checks, with the rendered Secrets: no ConfigError."""
    for workload in workloads(docs):
        for container in containers(workload):
            role = role_of(container)
            if role is not None:
                PARSERS[role]([], resolved_env(docs, container))
    gateway = containers(find(docs, "Deployment", "gateway"))[0]
    config, _ = gateway_args([], resolved_env(docs, gateway))
    assert config.host == "0.0.0.0" and len(config.api_keys.keys) == 1
    assert config.port == next(p["containerPort"] for p in gateway["ports"])


def test_prometheus_annotations_name_the_port_the_metrics_actor_serves(docs: list[Doc]):
    service = find(docs, "Service", "metrics")
    deployment = find(docs, "Deployment", "metrics")
    container = containers(deployment)[0]
    config, _ = metrics_args([], resolved_env(docs, container))
    assert config.metrics_host == "0.0.0.0"
    for annotated in (service["metadata"], deployment["spec"]["template"]["metadata"]):
        annotations = annotated["annotations"]
        assert annotations["prometheus.io/scrape"] == "true"
        assert int(annotations["prometheus.io/port"]) == config.metrics_port
        assert annotations["prometheus.io/path"] == "/metrics"
    assert [p["containerPort"] for p in container["ports"]] == [config.metrics_port]
    assert [p["port"] for p in service["spec"]["ports"]] == [config.metrics_port]


def test_every_pod_runs_without_privileges_on_a_read_only_root(docs: list[Doc]):
    for workload in workloads(docs):
        pod = workload["spec"]["template"]["spec"]
        assert pod["securityContext"]["runAsNonRoot"] is True
        assert pod["securityContext"]["runAsUser"] == 10001  # the image's user
        for container in pod["containers"]:
            context = container["securityContext"]
            assert context["allowPrivilegeEscalation"] is False
            assert context["readOnlyRootFilesystem"] is True
            assert context["capabilities"]["drop"] == ["ALL"]
            assert "limits" in container["resources"] and "requests" in container["resources"]


# -- NATS -----------------------------------------------------------------------------------------


def test_the_statefulset_routes_to_its_own_pods_through_the_headless_service(docs: list[Doc]):
    nats = find(docs, "StatefulSet", "nats")
    headless = find(docs, "Service", nats["spec"]["serviceName"])
    assert headless["spec"]["clusterIP"] == "None"
    assert headless["spec"]["publishNotReadyAddresses"] is True
    config = find(docs, "ConfigMap", "nats-config")["data"]["nats.conf"]
    routes = re.findall(r'"nats-route://([^:"]+):(\d+)"', config)
    expected = [f"nats-{i}.{headless['metadata']['name']}" for i in range(nats["spec"]["replicas"])]
    assert [host for host, _ in routes] == expected
    cluster_port = next(p["port"] for p in headless["spec"]["ports"] if p["name"] == "cluster")
    assert {int(port) for _, port in routes} == {cluster_port}
    assert nats["spec"]["replicas"] == 3
    claims = nats["spec"]["volumeClaimTemplates"]
    mounts = containers(nats)[0]["volumeMounts"]
    assert [c["metadata"]["name"] for c in claims] == ["data"]
    assert {"name": "data", "mountPath": "/data"} in mounts
    assert 'store_dir: "/data/jetstream"' in config
    assert "max_payload: 8MB" in config


def test_the_auth_include_is_the_generated_one():
    assert (KUBE / "base" / "nats" / "auth.conf").read_text() == deploy_config()
    assert (REPO / "deploy" / "nats" / "auth.conf").read_text() == deploy_config()


def test_nats_server_accepts_the_kubernetes_config(docs: list[Doc], tmp_path: Path):
    """The ConfigMap's files as the pods mount them, the Secret's passwords in the environment."""
    for name, text in find(docs, "ConfigMap", "nats-config")["data"].items():
        (tmp_path / name).write_text(text)
    container = containers(find(docs, "StatefulSet", "nats"))[0]
    checked = subprocess.run(
        [str(nats_server_binary()), "-t", "-c", str(tmp_path / "nats.conf")],
        capture_output=True,
        text=True,
        timeout=30,
        env={**os.environ, **resolved_env(docs, container)},
        check=False,
    )
    assert checked.returncode == 0, checked.stderr or checked.stdout


# -- secrets and the optional ServiceMonitor ------------------------------------------------------


def test_make_secrets_writes_private_files_the_roles_accept(kube_dir: Path, docs: list[Doc]):
    secrets = kube_dir / "base" / "secrets"
    for name in ("nats.env", "gateway.env"):
        assert (secrets / name).stat().st_mode & 0o777 == 0o600
    passwords = secret_values(docs, "nats-passwords")
    assert set(passwords) == {password_variable(r) for r in ROLE_NAMES}
    assert all(re.fullmatch(r"p[0-9a-f]{48}", p) for p in passwords.values())
    assert len(set(passwords.values())) == len(passwords)
    keys = KeyRing.parse(secret_values(docs, "gateway-api-keys")["MLBUFFET_API_KEYS"], "secret")
    assert [k.name for k in keys.keys] == ["ops"]
    again = make_secrets(kube_dir)
    assert again.returncode == 1 and "--force" in again.stderr  # never overwrites by accident


def test_the_example_secrets_list_what_the_generator_writes(kube_dir: Path):
    secrets = KUBE / "base" / "secrets"
    for name in ("nats.env", "gateway.env"):
        example = read_env_file(secrets / f"{name}.example")
        assert set(example) == set(read_env_file(kube_dir / "base" / "secrets" / name))
        assert set(example.values()) == {""}  # placeholders, no default secret


def test_the_servicemonitor_overlay_adds_a_monitor_of_the_metrics_service(kube_dir: Path):
    base = render(kube_dir)
    docs = render(kube_dir / "overlays" / "servicemonitor")
    extra = [d for d in docs if d["kind"] in CRD_KINDS]
    assert len(docs) == len(base) + 1 and len(extra) == 1
    monitor = extra[0]
    assert monitor["apiVersion"] == "monitoring.coreos.com/v1"
    assert monitor["metadata"]["namespace"] == "mlbuffet"
    service = find(docs, "Service", "metrics")
    assert (
        monitor["spec"]["selector"]["matchLabels"].items() <= service["metadata"]["labels"].items()
    )
    ports = {p["name"] for p in service["spec"]["ports"]}
    assert [e["port"] for e in monitor["spec"]["endpoints"]] == ["http-metrics"]
    assert {e["port"] for e in monitor["spec"]["endpoints"]} <= ports
    assert [e["path"] for e in monitor["spec"]["endpoints"]] == ["/metrics"]
    assert not any(d["kind"] in CRD_KINDS for d in base), "the CRD stays out of the default"
    # The job name the Grafana dashboard and the Compose Prometheus use.
    job = service["metadata"]["labels"][monitor["spec"]["jobLabel"]]
    assert f"job_name: {job}" in (REPO / "deploy" / "prometheus" / "compose.yml").read_text()
    assert f'job=\\"{job}\\"' in (REPO / "deploy" / "grafana" / "mlbuffet.json").read_text()
