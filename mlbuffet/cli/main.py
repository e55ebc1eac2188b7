"""`mlbuffet`: one command, one sub-command per role (plus `up`, which runs them all)."""

from __future__ import annotations

import importlib
import sys
from collections.abc import Sequence

ROLES: dict[str, tuple[str, str]] = {
    "up": (
        "mlbuffet.cli.up",
        "nats-server, gateway, modelhosts, a metrics actor and a trainer on this machine, in one command",
    ),
    "gateway": ("gateway.__main__", "the REST gateway"),
    "modelhost": ("actors.modelhost.__main__", "a modelhost serving models from the registry"),
    "metrics": (
        "actors.metrics.__main__",
        "the metrics actor: cluster view, node events, Prometheus metrics",
    ),
    "status": ("mlbuffet.cli.status", "a table of the cluster's nodes and models"),
    "events": ("mlbuffet.cli.events", "follow the event stream (models, nodes)"),
    "trainer": (
        "actors.trainer.__main__",
        "a trainer running training jobs and registering their models",
    ),
    "nats": ("mlbuffet.cli.nats", "the embedded nats-server with JetStream, alone"),
    "models": ("mlbuffet.cli.models", "list, show, push, delete models; set the default version"),
    "predict": ("mlbuffet.cli.predict", "one prediction from JSON values, an image or .npy files"),
    "train": (
        "mlbuffet.cli.train",
        "submit a training job, follow its log; list, show, cancel jobs",
    ),
    "keys": ("mlbuffet.cli.keys", "make an API key for the gateway (docs/security.md)"),
}

USAGE = "usage: mlbuffet {" + ",".join(ROLES) + "} [options]   (mlbuffet <command> --help)"


def main(argv: Sequence[str] | None = None) -> int:
    args = list(sys.argv[1:] if argv is None else argv)
    if not args or args[0] in ("-h", "--help", "help"):
        print(USAGE)
        for name, (_, summary) in ROLES.items():
            print(f"  {name:<10} {summary}")
        return 0 if args else 2
    if args[0] in ("-V", "--version"):
        from importlib.metadata import version

        print(f"mlbuffet {version('mlbuffet')}")
        return 0
    command = ROLES.get(args[0])
    if command is None:
        print(f"mlbuffet: unknown command {args[0]!r}\n{USAGE}", file=sys.stderr)
        return 2
    # Imported on demand: `mlbuffet gateway` never loads onnxruntime, for one.
    module = importlib.import_module(command[0])
    return int(module.main(args[1:]))


if __name__ == "__main__":
    sys.exit(main())
