"""Every NATS subject, queue group and bucket name MLBuffet uses, and nothing else.

No other module spells a subject: they all call these functions, so the wire
layout can be read (and changed) in one place. See docs/protocol.md.
"""

from __future__ import annotations

import re

from mlbuffet.protocol.names import MAX_VERSION, MODEL_NAME_PATTERN

_MODEL_NAME = re.compile(MODEL_NAME_PATTERN)

PREFIX = "mlbuffet"

MODELHOST_QUEUE = "modelhost"
"""Queue group of every inference and echo subscription: one host answers each request."""

TRAINER_QUEUE = "trainer"
"""Queue group of the trainers' submit subscription: one trainer accepts each job."""

METRICS_QUEUE = "metrics"
"""Queue group of the cluster-status endpoint: one metrics actor answers each request."""

SERVICE_PREFIX = "mlbuffet-"
"""Every actor is a NATS micro service named `mlbuffet-<role>` ($SRV.PING finds them all)."""

MODELS_BUCKET = "mlbuffet_models"
"""JetStream KV bucket: one key per model, the value a JSON ModelRecord."""

FILES_BUCKET = "mlbuffet_model_files"
"""JetStream Object Store bucket: one object per model version."""

TRAIN_JOBS_BUCKET = "mlbuffet_train_jobs"
"""JetStream KV bucket: one key per training job, the value a msgpack JobRecord."""

TRAIN_FILES_BUCKET = "mlbuffet_train_files"
"""JetStream Object Store bucket: a job's input files and its final log (see train_input)."""

TRAIN_EVENTS_STREAM = "mlbuffet_train_events"
"""JetStream stream over train_events("*"): every job's state changes and log lines, replayable."""

EVENTS_STREAM = "mlbuffet_events"
"""JetStream stream over kept_events(): the mesh's recent model and node events, replayable."""


def infer(model: str, version: int | None = None) -> str:
    """Inference on the default version of `model`, or on a pinned `version`."""
    if version is None:
        return f"{PREFIX}.infer.{model}"
    return f"{PREFIX}.infer.{model}.{version}"


def infer_pinned_versions(model: str) -> str:
    """Wildcard over every pinned version of `model` (one subscription serves them all)."""
    return f"{PREFIX}.infer.{model}.*"


def parse_infer(subject: str) -> tuple[str, int | None]:
    """(model, version) of an inference subject; version None for the default one.

    Raises ValueError for a subject that is not an inference subject.
    """
    parts = subject.split(".")
    if (
        len(parts) not in (3, 4)
        or parts[0] != PREFIX
        or parts[1] != "infer"
        or not _MODEL_NAME.fullmatch(parts[2])
    ):
        raise ValueError(f"not an inference subject: {subject!r}")
    if len(parts) == 3:
        return parts[2], None
    version = parts[3]
    # str.isdigit() also accepts digits of other scripts ("٣"); versions are ASCII.
    if not (version.isascii() and version.isdigit()) or not 1 <= int(version) <= MAX_VERSION:
        raise ValueError(f"not a version number: {version!r}")
    return parts[2], int(version)


def place(model: str) -> str:
    """Request/reply, queue group MODELHOST_QUEUE: load `model` on a host with room (PlaceReply).

    Sent by a caller whose inference request met no responders: no host holds the model.
    """
    return f"{PREFIX}.place.{model}"


def place_any() -> str:
    """Wildcard over every model's place subject (a host that may load any model)."""
    return f"{PREFIX}.place.*"


def parse_place(subject: str) -> str:
    """The model of a place subject; ValueError for any other subject."""
    parts = subject.split(".")
    if len(parts) != 3 or parts[:2] != [PREFIX, "place"] or not _MODEL_NAME.fullmatch(parts[2]):
        raise ValueError(f"not a place subject: {subject!r}")
    return parts[2]


def echo() -> str:
    """The load-balancing test: any modelhost answers with its node id."""
    return f"{PREFIX}.test.echo"


def train_submit() -> str:
    """Submit a training job (TrainJob -> TrainAccepted), queue group TRAINER_QUEUE."""
    return f"{PREFIX}.train.submit"


def model_events(model: str) -> str:
    """Events about one model: uploaded, default-changed, deleted, loaded, unloaded."""
    return f"{PREFIX}.events.model.{model}"


def train_events(job: str) -> str:
    """State changes and log lines of one job (JobEvent); `job="*"` matches every job."""
    return f"{PREFIX}.events.train.{job}"


def all_events() -> str:
    return f"{PREFIX}.events.>"


def kept_events() -> list[str]:
    """What EVENTS_STREAM keeps: model and node events (training's are TRAIN_EVENTS_STREAM's).

    JetStream lets no two streams share a subject, so the two streams split
    `mlbuffet.events.>` between them.
    """
    return [model_events("*"), node_events("*")]


def node_events(node: str) -> str:
    """A node came up or went down (published by the metrics actor)."""
    return f"{PREFIX}.events.node.{node}"


def heartbeat(role: str, node: str) -> str:
    """Every node publishes its Heartbeat here every few seconds."""
    return f"{PREFIX}.heartbeat.{role}.{node}"


def all_heartbeats() -> str:
    return f"{PREFIX}.heartbeat.>"


def role_heartbeats(role: str) -> str:
    """Every heartbeat of one role's nodes (the gateway follows the modelhosts')."""
    return f"{PREFIX}.heartbeat.{role}.*"


def heartbeat_node(subject: str) -> str:
    """The node id of a heartbeat subject: its last token."""
    return subject.rsplit(".", 1)[-1]


def node_heartbeat_now(node: str) -> str:
    """Request/reply: the node's current Heartbeat at once (its micro service's `heartbeat` endpoint)."""
    return f"{PREFIX}.node.{node}.heartbeat"


def cluster_status() -> str:
    """Request/reply: the metrics actor's ClusterStatus."""
    return f"{PREFIX}.cluster.status"


def cluster_series() -> str:
    """Request/reply: the metrics actor's recent samples of the cluster (ClusterSeries)."""
    return f"{PREFIX}.cluster.series"


def service_name(role: str) -> str:
    """The NATS micro service name of a role."""
    return f"{SERVICE_PREFIX}{role}"


def service_ping(role: str) -> str:
    """Every node of a role answers a PING here (NATS micro's discovery, `nats micro ping`)."""
    return f"$SRV.PING.{service_name(role)}"


def file_object(model: str, version: int) -> str:
    """Name of a model version's file in the FILES_BUCKET object store."""
    return f"{model}/{version}"


def train_input(job: str, filename: str) -> str:
    """Name of one of a job's input files in the TRAIN_FILES_BUCKET object store."""
    return f"{job}/input/{filename}"


def train_log(job: str) -> str:
    """Name of a finished job's whole log in the TRAIN_FILES_BUCKET object store."""
    return f"{job}/log"
