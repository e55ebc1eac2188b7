"""LitServe serving the model: python -m bench.peers.litserve_server MODEL.onnx PORT (its own venv).

Settings (LitServe's docs for CPU throughput): one inference worker per core
(`workers_per_device=2` on the 2-core machine), one API server process, the
ZeroMQ queue (`fast_queue=True`), no batching (MLBuffet's iris does not batch).
"""

# No `from __future__ import annotations`: LitServe reads decode_request's annotation as a type.
import os
import sys
from typing import Any

import litserve as ls

from bench.peers.onnx_model import OnnxModel

WORKERS = os.cpu_count() or 1


class IrisAPI(ls.LitAPI):  # type: ignore[misc]
    def setup(self, device: str) -> None:
        self.model = OnnxModel(sys.argv[1])

    def decode_request(self, request: dict[str, Any]) -> Any:
        return request["values"]

    def predict(self, values: Any) -> list[Any]:
        return self.model.run(values).tolist()  # type: ignore[no-any-return]

    def encode_response(self, labels: list[Any]) -> dict[str, Any]:
        return {"values": labels}


if __name__ == "__main__":
    server = ls.LitServer(
        IrisAPI(), accelerator="cpu", devices=1, workers_per_device=WORKERS, fast_queue=True
    )
    server.run(
        host="127.0.0.1",
        port=int(sys.argv[2]),
        num_api_servers=1,
        generate_client_file=False,
        log_level="warning",
    )
