from __future__ import annotations

from tests.conftest import eventually
from tests.gateway.conftest import upload_file


async def test_upload_then_predict_seed_iris(gateway, serving, seed_iris):
    body = await upload_file(gateway, "iris.onnx", seed_iris)
    assert body["model"] == "iris" and body["version"] == 1

    async def served() -> bool:
        return "iris" in serving.served

    await eventually(served)
    response = await gateway.post("/api/v1/models/iris/prediction", json={"values": [2, 5, 1, 4]})
    body = await response.json()
    assert response.status == 200, body
    assert body["values"] == [1]
    assert body["http_status"] == {
        "code": 200,
        "description": "Prediction successful",
        "name": "OK",
    }
