"""The plain-aiohttp reference: one process, onnxruntime called inline in the handler.

    python -m bench.peers.aiohttp_inline MODEL.onnx PORT

Same JSON as MLBuffet's /api/v1/models/<m>/prediction ({"values": [...]}), no
NATS, no envelope, no checks: the least a Python HTTP server can do per request.
"""

from __future__ import annotations

import sys

import numpy as np
import onnxruntime as ort
import orjson
from aiohttp import web

from mlbuffet.roles.runner import run


def make_app(model: str) -> web.Application:
    options = ort.SessionOptions()
    options.intra_op_num_threads = 1
    session = ort.InferenceSession(model, options, providers=["CPUExecutionProvider"])
    name = session.get_inputs()[0].name
    outputs = [o.name for o in session.get_outputs() if o.type.startswith("tensor")]

    async def predict(request: web.Request) -> web.Response:
        body = orjson.loads(await request.read())
        values = np.array(body["values"], dtype=np.float32).reshape(-1, 4)
        result = session.run(outputs, {name: values})
        return web.Response(
            body=orjson.dumps({"values": result[0].tolist()}), content_type="application/json"
        )

    app = web.Application()
    app.router.add_post("/predict", predict)
    app.router.add_get("/ready", lambda _: web.Response(text="ok"))  # type: ignore[arg-type,return-value]
    return app


async def serve(model: str, port: int) -> None:
    runner = web.AppRunner(make_app(model), access_log=None)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", port).start()
    print(f"aiohttp-inline listening on http://127.0.0.1:{port}", flush=True)
    import asyncio

    await asyncio.Event().wait()


if __name__ == "__main__":
    run(serve(sys.argv[1], int(sys.argv[2])))
