from __future__ import annotations

import numpy as np

from mlbuffet.protocol import subjects
from mlbuffet.protocol.inference import InferRequest, InferResponse, Tensor
from mlbuffet.protocol.tensors import decode_array, encode_array
from mlbuffet.protocol.wire import pack, unpack


async def test_modelhost_answers_seed_iris(nc, upload, start_modelhost, seed_iris):
    await upload("iris", seed_iris)
    host = await start_modelhost()
    assert "iris" in host.served
    datatype, shape, data = encode_array(np.array([[2, 5, 1, 4]], dtype=np.float32))
    request = InferRequest(
        model="iris", inputs=(Tensor("float_input", datatype, tuple(shape), data),)
    )
    msg = await nc.request(subjects.infer("iris"), pack(request), timeout=5)
    response = unpack(msg.data, InferResponse.from_dict)
    label = response.outputs[0]
    assert decode_array(label.datatype, label.shape, label.data).tolist() == [1]
    assert response.outputs[1].value[0].keys() == {0, 1, 2}
