"""Through REST: a model no modelhost holds is loaded by its first request; one that can
never fit is a 507 that names it, its size and the budget."""

from __future__ import annotations

import io
from pathlib import Path

import aiohttp

from tests.onnx_models import lookup_table

MIB = 2**20


async def upload_file(gateway, name: str, path: Path) -> None:
    """An upload of a file of megabytes, streamed (raw bytes that large lock aiohttp's loop)."""
    form = aiohttp.FormData()
    form.add_field("path", io.BytesIO(path.read_bytes()), filename=path.name)
    response = await gateway.put(f"/api/v1/models/{name}", data=form)
    assert response.status == 201, (await response.text())[:500]


async def test_a_model_no_host_holds_is_loaded_by_its_first_prediction(
    make_gateway, start_modelhost, tmp_path
):
    gateway = await make_gateway()
    tables = [lookup_table(tmp_path / f"t{k}.onnx", 4, 1000.0 * k) for k in range(2)]
    await upload_file(gateway, "t0", tables[0])
    host = await start_modelhost(memory_budget=64 * MIB, workers=2)
    # Room for t0 as measured and half of t1's weights: t1 is left to its first request,
    # which evicts t0.
    host.models.memory.budget = host.models.used() + tables[1].stat().st_size // 2
    await upload_file(gateway, "t1", tables[1])
    await host.settle()
    assert set(host.served) == {"t0"}

    response = await gateway.post("/api/v1/models/t1/prediction", json={"values": [3, 5]})
    body = await response.json()
    assert response.status == 200, body
    assert body["values"] == [[1003.0] * 4, [1005.0] * 4]
    assert set(host.served) == {"t1"} and host.models.used() <= host.models.memory.budget


async def test_a_model_over_every_budget_is_a_507_naming_it(
    make_gateway, start_modelhost, tmp_path
):
    gateway = await make_gateway()
    await start_modelhost(memory_budget=8 * MIB, workers=2)
    await upload_file(gateway, "big", lookup_table(tmp_path / "big.onnx", 6, 0.0))
    response = await gateway.post("/api/v1/models/big/prediction", json={"values": [1]})
    body = await response.json()
    assert response.status == 507, body
    described = body["http_status"]["description"]
    assert "model 'big'" in described and "12.0 MiB" in described, described
    assert "budget of 8.0 MiB" in described, described
    # Nothing broke: the gateway and the host still answer.
    assert (await gateway.get("/api/v1/models")).status == 200
