"""Every failure of Client.infer is the MLBuffetError (and status) the REST API answers with."""

from __future__ import annotations

import asyncio
import socket

import numpy as np
import pytest

from mlbuffet import Client
from mlbuffet.protocol.errors import (
    BadRequestError,
    DeadlineExceededError,
    MLBuffetError,
    ModelNotFoundError,
    ModelNotReadyError,
    PayloadTooLargeError,
    ServiceUnavailableError,
    UnprocessableError,
)
from tests.client.conftest import serving

X = np.zeros((1, 4), dtype=np.float32)


def nested_list(depth: int) -> list[object]:
    value: list[object] = [1.0]
    for _ in range(depth - 1):
        value = [value]
    return value


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


async def test_an_unknown_model_is_404_at_once(client, start_modelhost):
    await start_modelhost()
    started = asyncio.get_running_loop().time()
    with pytest.raises(ModelNotFoundError, match="'nosuch' not found") as caught:
        await client.infer("nosuch", {"x": X})
    assert caught.value.status == 404
    assert asyncio.get_running_loop().time() - started < 0.5


async def test_an_unknown_version_is_404(client, upload, start_modelhost, model_files):
    await upload("add", model_files.add_one)
    await start_modelhost()
    with pytest.raises(ModelNotFoundError, match="no version 7"):
        await client.infer("add", {"x": X}, version=7)


async def test_a_model_no_modelhost_serves_is_503(client, upload, model_files):
    await upload("add", model_files.add_one)
    with pytest.raises(ModelNotReadyError, match="no modelhost serves") as caught:
        await client.infer("add", {"x": X})
    assert caught.value.status == 503


async def test_no_answer_before_the_timeout_is_504(client, upload, start_modelhost, model_files):
    host = await start_modelhost(workers=1)
    await upload("slow", model_files.matmul)
    await serving(host, "slow")
    batch = np.ones((4096, 256), dtype=np.float32)
    with pytest.raises(DeadlineExceededError, match=r"within 0\.1 s") as caught:
        await client.infer("slow", {"x": batch}, timeout=0.1)
    assert caught.value.status == 504


@pytest.fixture
async def add_served(upload, start_modelhost, model_files) -> None:
    """The add_one model ("add": y = x + 1, float32 [N, 4]) served by one modelhost."""
    host = await start_modelhost()
    await upload("add", model_files.add_one)
    await serving(host, "add")


async def test_input_that_does_not_fit_is_422_from_the_modelhost(client, add_served):
    with pytest.raises(UnprocessableError, match=r"shape \[1, 3\]") as caught:
        await client.infer("add", {"x": np.zeros((1, 3), dtype=np.float32)})
    assert caught.value.status == 422
    with pytest.raises(UnprocessableError, match=r"no input 'nope'|unknown input 'nope'"):
        await client.infer("add", {"nope": X})


@pytest.mark.parametrize(
    "values",
    [[[1.0, 2.0], [3.0]], [[[1.0]] * 2, [1.0, 2.0]], nested_list(65)],
    ids=["ragged", "ragged deeper", "65 dimensions"],
)
async def test_inputs_numpy_cannot_make_an_array_of_are_422_before_sending(client, values):
    with pytest.raises(UnprocessableError, match="'x' is not an array") as caught:
        await client.infer("add", {"x": values})
    assert caught.value.status == 422


async def test_nan_and_infinities_in_arrays_reach_the_model_as_they_are(client, add_served):
    """Tensors travel binary over NATS: NaN and infinities are values the caller chose."""
    x = np.array([[np.nan, np.inf, -np.inf, 1.0]], dtype=np.float32)
    result = await client.infer("add", {"x": x})
    np.testing.assert_array_equal(result["y"], x + 1)


async def test_a_request_over_the_servers_max_payload_is_413_before_it_is_sent(client):
    too_big = np.zeros(client.nc.max_payload // 4 + 1, dtype=np.float32)
    with pytest.raises(PayloadTooLargeError):
        await client.infer("add", {"x": too_big})


async def test_an_invalid_model_name_is_400_and_never_reaches_nats(client):
    with pytest.raises(BadRequestError):
        await client.infer("a.b.>", {"x": X})


async def test_an_unreachable_nats_is_503():
    with pytest.raises(ServiceUnavailableError, match="cannot reach NATS") as caught:
        await Client.connect(f"nats://127.0.0.1:{free_port()}", connect_wait=0)
    assert isinstance(caught.value, MLBuffetError) and caught.value.status == 503


async def test_a_closed_connection_is_503(nats_server, upload, model_files):
    client = await Client.connect(nats_server.url)
    await client.close()
    with pytest.raises(ServiceUnavailableError, match="lost its NATS connection"):
        await client.infer("add", {"x": X})
