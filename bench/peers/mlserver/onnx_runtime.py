"""A minimal MLServer runtime running an ONNX model with onnxruntime (MLServer ships none).

Loaded by MLServer from `model-settings.json` ("implementation":
"onnx_runtime.OnnxRuntime"); it runs in MLServer's own virtualenv, never in
MLBuffet's. Like MLBuffet's modelhost: one intra-op and one inter-op thread, tensor outputs only.
"""

from __future__ import annotations

import onnxruntime as ort
from mlserver import MLModel
from mlserver.codecs import NumpyCodec
from mlserver.types import InferenceRequest, InferenceResponse
from mlserver.utils import get_model_uri


class OnnxRuntime(MLModel):  # type: ignore[misc]
    async def load(self) -> bool:
        uri = await get_model_uri(self._settings)
        options = ort.SessionOptions()
        options.intra_op_num_threads = 1
        options.inter_op_num_threads = 1
        self._session = ort.InferenceSession(uri, options, providers=["CPUExecutionProvider"])
        self._outputs = [o.name for o in self._session.get_outputs() if o.type.startswith("tensor")]
        return True

    async def predict(self, payload: InferenceRequest) -> InferenceResponse:
        feeds = {item.name: NumpyCodec.decode_input(item) for item in payload.inputs}
        values = self._session.run(self._outputs, feeds)
        return InferenceResponse(
            model_name=self.name,
            outputs=[
                NumpyCodec.encode_output(name, value)
                for name, value in zip(self._outputs, values, strict=True)
            ],
        )
