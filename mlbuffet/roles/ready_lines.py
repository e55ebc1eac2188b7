"""The line each role prints on stdout once it is ready, and the pattern that reads it back.

`mlbuffet up` starts the roles as child processes and learns from these lines
that a child is ready and where it listens (cli/mesh.py), so each line's
format and its reader sit side by side here: change one, and its neighbour is
in sight.
"""

from __future__ import annotations

import re
from collections.abc import Mapping

GATEWAY_READY = re.compile(r"^gateway (\S+) listening on (http://\S+)$")
"""Groups: node id, the gateway's REST URL."""


def gateway_ready(node_id: str, url: str) -> str:
    return f"gateway {node_id} listening on {url}"


MODELHOST_READY = re.compile(r"^modelhost (\S+) ready, serving (.*)$")
"""Groups: node id, the models served (read by `models_in_ready_line`)."""

NO_MODELS = "no models yet"
_SERVED = re.compile(r"([A-Za-z0-9_-]+):\d+")


def modelhost_ready(node_id: str, defaults: Mapping[str, int]) -> str:
    """`defaults`: the default version each served model is serving."""
    served = ", ".join(f"{name}:{version}" for name, version in sorted(defaults.items()))
    return f"modelhost {node_id} ready, serving {served or NO_MODELS}"


def models_in_ready_line(served: str) -> set[str]:
    """The model names of a modelhost's ready line tail: `diabetes:1, iris:1` or `no models yet`."""
    return set(_SERVED.findall(served))


METRICS_READY = re.compile(r"^metrics (\S+) ready, prometheus on (http://\S+)$")
"""Groups: node id, the Prometheus endpoint's URL."""


def metrics_ready(node_id: str, url: str) -> str:
    return f"metrics {node_id} ready, prometheus on {url}"


TRAINER_READY = re.compile(r"^trainer (\S+) ready, backend (\w+)")
"""Groups: node id, the backend's name."""


def trainer_ready(node_id: str, backend: str, max_jobs: int) -> str:
    return f"trainer {node_id} ready, backend {backend}, {max_jobs} job(s) at once"
