"""Who may publish and subscribe to what on NATS: one user per role, least privilege.

The permissions are defined here once and rendered into nats-server
configuration: deploy/nats/auth.conf (passwords as `$MLBUFFET_NATS_<ROLE>_PASSWORD`
environment references, checked to be this module's output by a test), and
the embedded server of `mlbuffet up` (generated passwords). docs/security.md
explains each grant.

Three rules shape every role:
- Replies: a responder gets `allow_responses` (it may answer the requests it
  received, once each) instead of publish rights on anyone's inbox.
- Inboxes: each user subscribes only under its own `_INBOX.<user>.>` (connection.py
  uses that prefix when a user name is set), so nobody can read the replies
  meant for another role: registry records, model files, predictions.
- JetStream: a role gets the API subjects of the streams it uses and nothing
  else; read-only roles cannot create, purge or write a bucket.
"""

from __future__ import annotations

import json
import secrets
from collections.abc import Mapping
from dataclasses import dataclass, field

from mlbuffet.protocol import subjects

INBOX_ROOT = "_INBOX"
MODELS_STREAM = f"KV_{subjects.MODELS_BUCKET}"
FILES_STREAM = f"OBJ_{subjects.FILES_BUCKET}"
JOBS_BUCKET = subjects.TRAIN_JOBS_BUCKET
"""The trainer's job records (KV)."""
JOB_FILES_BUCKET = subjects.TRAIN_FILES_BUCKET
"""The trainer's job inputs and final logs (Object Store)."""
JOBS_STREAM = f"KV_{JOBS_BUCKET}"
JOB_FILES_STREAM = f"OBJ_{JOB_FILES_BUCKET}"
JOB_EVENTS_STREAM = subjects.TRAIN_EVENTS_STREAM
"""Keeps every job's events (mlbuffet.events.train.*), so a late reader replays a log."""
EVENTS_STREAM = subjects.EVENTS_STREAM
"""Keeps the last model and node events (the console's history, `mlbuffet events --since`)."""
P = subjects.PREFIX


def inbox_prefix(user: str) -> str:
    """Where `user`'s replies arrive; the only inboxes it may subscribe to."""
    return f"{INBOX_ROOT}.{user}"


def stream_read(stream: str) -> list[str]:
    """Read a KV or Object Store bucket: info, get (stored and direct), watch (ordered consumers)."""
    api = "$JS.API"
    return [
        f"{api}.STREAM.INFO.{stream}",
        f"{api}.STREAM.MSG.GET.{stream}",
        f"{api}.DIRECT.GET.{stream}",
        f"{api}.DIRECT.GET.{stream}.>",
        f"{api}.CONSUMER.CREATE.{stream}",
        f"{api}.CONSUMER.CREATE.{stream}.>",
        f"{api}.CONSUMER.INFO.{stream}.>",
        f"{api}.CONSUMER.DELETE.{stream}.>",
        f"$JS.FC.{stream}.>",
    ]


def stream_admin(stream: str) -> list[str]:
    """Create the bucket (first start) and purge it (object replacement, deletes)."""
    api = "$JS.API"
    return [
        f"{api}.STREAM.CREATE.{stream}",
        f"{api}.STREAM.UPDATE.{stream}",
        f"{api}.STREAM.PURGE.{stream}",
        f"{api}.STREAM.MSG.DELETE.{stream}",
    ]


def stream_create(stream: str) -> list[str]:
    """Make sure a stream exists (created on first start, its limits updated): no data access."""
    api = "$JS.API"
    return [
        f"{api}.STREAM.INFO.{stream}",
        f"{api}.STREAM.CREATE.{stream}",
        f"{api}.STREAM.UPDATE.{stream}",
    ]


def kv_write(bucket: str) -> list[str]:
    return [f"$KV.{bucket}.>"]


def obj_write(bucket: str) -> list[str]:
    return [f"$O.{bucket}.>"]


STREAM_LOOKUP = "$JS.API.STREAM.NAMES"
"""nats-py finds the stream of a subject before subscribing to it (an object's chunks):
it lists stream names, nothing more."""


def registry_read() -> list[str]:
    return [STREAM_LOOKUP, *stream_read(MODELS_STREAM), *stream_read(FILES_STREAM)]


def registry_write() -> list[str]:
    return (
        registry_read()
        + stream_admin(MODELS_STREAM)
        + stream_admin(FILES_STREAM)
        + kv_write(subjects.MODELS_BUCKET)
        + obj_write(subjects.FILES_BUCKET)
    )


def jobs_write() -> list[str]:
    return (
        stream_read(JOBS_STREAM)
        + stream_read(JOB_FILES_STREAM)
        + stream_read(JOB_EVENTS_STREAM)
        + stream_admin(JOBS_STREAM)
        + stream_admin(JOB_FILES_STREAM)
        + stream_admin(JOB_EVENTS_STREAM)
        + kv_write(JOBS_BUCKET)
        + obj_write(JOB_FILES_BUCKET)
    )


DISCOVERY = "$SRV.>"
"""Micro-service discovery: every actor answers $SRV.PING|INFO|STATS[.name[.id]]."""
HEARTBEAT_NOW = f"{P}.node.*.heartbeat"
"""Every actor answers a request for its current heartbeat (its micro service's endpoint)."""


@dataclass(frozen=True, slots=True)
class Role:
    name: str
    summary: str
    publish: tuple[str, ...] = ()
    subscribe: tuple[str, ...] = ()
    responds: bool = False
    """allow_responses: may answer each request it received, once."""
    everything: bool = False

    @property
    def subscribe_with_inbox(self) -> tuple[str, ...]:
        return (f"{inbox_prefix(self.name)}.>", *self.subscribe)


ROLES: tuple[Role, ...] = (
    Role("admin", "operators and `mlbuffet up` itself: everything", everything=True),
    Role(
        "gateway",
        "REST gateway: asks for predictions, changes the registry, never serves inference",
        publish=(
            f"{P}.infer.>",
            f"{P}.place.>",
            f"{P}.test.echo",
            f"{P}.events.>",
            f"{P}.heartbeat.gateway.>",
            f"{P}.train.submit",
            f"{P}.cluster.status",
            f"{P}.cluster.series",
            DISCOVERY,
            "$JS.API.INFO",
            *registry_write(),
            *jobs_write(),
            *stream_create(EVENTS_STREAM),
            *stream_read(EVENTS_STREAM),
        ),
        subscribe=(f"{P}.events.>", f"{P}.heartbeat.>", DISCOVERY, HEARTBEAT_NOW),
        responds=True,
    ),
    Role(
        "modelhost",
        "serves inference; reads the registry, never writes it",
        publish=(
            f"{P}.heartbeat.modelhost.>",
            f"{P}.events.model.>",
            *registry_read(),
            *stream_create(EVENTS_STREAM),
        ),
        subscribe=(f"{P}.infer.>", f"{P}.place.>", f"{P}.test.echo", DISCOVERY, HEARTBEAT_NOW),
        responds=True,
    ),
    Role(
        "trainer",
        "runs training jobs and registers the models they make",
        publish=(
            f"{P}.heartbeat.trainer.>",
            f"{P}.events.train.>",
            f"{P}.events.model.>",
            "$JS.API.INFO",
            *registry_write(),
            *jobs_write(),
            *stream_create(EVENTS_STREAM),
        ),
        subscribe=(f"{P}.train.submit", DISCOVERY, HEARTBEAT_NOW),
        responds=True,
    ),
    Role(
        "metrics",
        "observes heartbeats and events, declares nodes up/down, answers the cluster view",
        publish=(
            f"{P}.heartbeat.metrics.>",
            f"{P}.events.node.>",
            DISCOVERY,
            *stream_read(MODELS_STREAM),
        ),
        subscribe=(
            f"{P}.heartbeat.>",
            f"{P}.events.>",
            f"{P}.cluster.status",
            f"{P}.cluster.series",
            DISCOVERY,
            HEARTBEAT_NOW,
        ),
        responds=True,
    ),
    Role(
        "predict",
        "an outside client: inference requests (and placing a model no host holds) and nothing else",
        publish=(f"{P}.infer.>", f"{P}.place.>"),
    ),
)
ROLE_NAMES = tuple(r.name for r in ROLES)


def password_variable(role: str) -> str:
    return f"MLBUFFET_NATS_{role.upper()}_PASSWORD"


def new_password() -> str:
    """192 random bits as letters and digits after a letter: nats-server parses the value of a
    `$VARIABLE` as a config value, so "8u..." fails as a bad number and "true" is a boolean."""
    return "p" + secrets.token_hex(24)


@dataclass(frozen=True, slots=True)
class Secret:
    """How one user proves who it is: a password (literal or `$ENV` reference) or an NKEY."""

    password: str | None = None
    variable: str | None = None
    nkey: str | None = None
    """Public NKEY (U...); the client holds the seed."""

    def render(self) -> str:
        if self.nkey is not None:
            return f"nkey: {json.dumps(self.nkey)}"
        if self.variable is not None:
            return f"user: USER, password: ${self.variable}"
        return f"user: USER, password: {json.dumps(self.password)}"


def _list(items: tuple[str, ...]) -> str:
    """One subject a line: the file is read by people deciding what to grant."""
    return "[\n" + "".join(f"          {json.dumps(i)}\n" for i in items) + "        ]"


def render_user(role: Role, secret: Secret) -> str:
    who = secret.render().replace("USER", json.dumps(role.name))
    if role.everything:
        permissions = 'publish: ">", subscribe: ">", allow_responses: true'
    else:
        parts = [
            f"publish: {{allow: {_list(role.publish)}}}" if role.publish else 'publish: {deny: ">"}'
        ]
        parts.append(f"subscribe: {{allow: {_list(role.subscribe_with_inbox)}}}")
        if role.responds:
            parts.append("allow_responses: true")
        permissions = ",\n        ".join(parts)
    return (
        f"    # {role.name}: {role.summary}\n"
        f"    {{{who}, permissions: {{\n        {permissions}\n    }}}}"
    )


def render_authorization(secrets_by_role: Mapping[str, Secret]) -> str:
    """An `authorization { users: [...] }` block for the roles in `secrets_by_role`."""
    users = [render_user(r, secrets_by_role[r.name]) for r in ROLES if r.name in secrets_by_role]
    return "authorization {\n  users: [\n" + "\n".join(users) + "\n  ]\n}\n"


DEPLOY_HEADER = """\
# MLBuffet NATS users: one per role, least privilege. GENERATED by
# mlbuffet/natsd/users.py (`python -m mlbuffet.natsd.users > deploy/nats/auth.conf`);
# edit that module, not this file. Passwords come from the environment of
# nats-server: set MLBUFFET_NATS_<ROLE>_PASSWORD for each role you run: letters
# and digits, starting with a letter (nats-server parses the value: "8a.." is a bad
# number, "true" a boolean), e.g. p$(openssl rand -hex 24). See docs/security.md.
"""


def deploy_config() -> str:
    return DEPLOY_HEADER + render_authorization(
        {role: Secret(variable=password_variable(role)) for role in ROLE_NAMES}
    )


@dataclass(frozen=True, slots=True)
class GeneratedCredentials:
    """Passwords made at start-up for the embedded nats-server of `mlbuffet up`."""

    passwords: dict[str, str] = field(default_factory=dict)

    @classmethod
    def generate(
        cls, roles: tuple[str, ...] = ("admin", "gateway", "modelhost", "trainer", "metrics")
    ) -> GeneratedCredentials:
        return cls({role: new_password() for role in roles})

    def authorization(self) -> str:
        return render_authorization({r: Secret(password=p) for r, p in self.passwords.items()})


if __name__ == "__main__":
    print(deploy_config(), end="")
