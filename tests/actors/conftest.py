"""Helpers for talking to modelhosts the way any NATS client does: msgpack over request/reply."""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np
from nats.aio.client import Client

from mlbuffet.protocol import subjects
from mlbuffet.protocol.inference import InferRequest, InferResponse, Tensor
from mlbuffet.protocol.tensors import decode_array, encode_array
from mlbuffet.protocol.wire import pack, unpack

REQUEST_TIMEOUT_S = 5.0


def request_for(
    model: str, inputs: Mapping[str, np.ndarray], outputs: tuple[str, ...] | None = None
) -> InferRequest:
    tensors = []
    for name, array in inputs.items():
        datatype, shape, data = encode_array(np.asarray(array))
        tensors.append(Tensor(name, datatype, tuple(shape), data))
    return InferRequest(model=model, inputs=tuple(tensors), outputs=outputs)


async def infer(
    nc: Client,
    model: str,
    inputs: Mapping[str, np.ndarray],
    *,
    version: int | None = None,
    outputs: tuple[str, ...] | None = None,
    timeout: float = REQUEST_TIMEOUT_S,  # noqa: ASYNC109 (nats-py takes the timeout itself)
) -> InferResponse:
    """One inference over NATS; an error reply is raised as its MLBuffetError."""
    msg = await nc.request(
        subjects.infer(model, version), pack(request_for(model, inputs, outputs)), timeout=timeout
    )
    return unpack(msg.data, InferResponse.from_dict)


def arrays(response: InferResponse) -> dict[str, object]:
    """The outputs of a response: numpy arrays for tensors, plain values for the others."""
    out: dict[str, object] = {}
    for output in response.outputs:
        if isinstance(output, Tensor):
            out[output.name] = decode_array(output.datatype, output.shape, output.data)
        else:
            out[output.name] = output.value
    return out


def adder_input(rows: int = 1) -> dict[str, np.ndarray]:
    """Input of the add_constant models: the answer minus this tells which version ran."""
    return {"x": np.arange(rows * 4, dtype=np.float32).reshape(rows, 4)}


def added(response: InferResponse) -> float:
    """The constant the answering add_constant version added."""
    y = arrays(response)["y"]
    x = np.arange(y.size, dtype=np.float32).reshape(y.shape)
    constants = np.unique(y - x)
    assert len(constants) == 1, constants
    return float(constants[0])
