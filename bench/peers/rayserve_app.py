"""Ray Serve serving the model: python -m bench.peers.rayserve_app MODEL.onnx PORT (its own venv).

Settings (Ray Serve's configuration and performance guides): 2 replicas, one
per core (`num_cpus: 1` each), `max_ongoing_requests: 64` (the bench's
connections; the default of 5 queues the rest in the proxy), no batching.
Ray's processes listen on 127.0.0.1 only; SIGTERM shuts the local cluster down.
"""

from __future__ import annotations

import signal
import sys
import threading
from typing import Any

import ray
from ray import serve
from starlette.requests import Request

from bench.peers.onnx_model import OnnxModel

REPLICAS = 2
MAX_ONGOING = 64


@serve.deployment(
    num_replicas=REPLICAS, max_ongoing_requests=MAX_ONGOING, ray_actor_options={"num_cpus": 1}
)
class Iris:
    def __init__(self, path: str) -> None:
        self.model = OnnxModel(path)

    async def __call__(self, request: Request) -> dict[str, Any]:
        body = await request.json()
        return {"values": self.model.run(body["values"]).tolist()}


def main(path: str, port: int) -> None:
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    ray.init(
        num_cpus=REPLICAS,
        include_dashboard=False,
        _node_ip_address="127.0.0.1",
        configure_logging=False,
    )
    try:
        serve.start(http_options={"host": "127.0.0.1", "port": port})
        serve.run(Iris.bind(path), route_prefix="/predict")  # type: ignore[attr-defined]
        print("rayserve ready", flush=True)
        stop.wait()
    finally:
        serve.shutdown()
        ray.shutdown()


if __name__ == "__main__":
    main(sys.argv[1], int(sys.argv[2]))
