"""Gateway fixtures: the real app on a real NATS, with real modelhost actors behind it."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import pytest
from aiohttp.test_utils import TestClient

from gateway.app import create_app
from gateway.config import GatewayConfig
from mlbuffet.config import NatsConfig

MakeClient = Callable[..., Awaitable[TestClient[Any, Any]]]


@pytest.fixture
def make_gateway(nats_config: NatsConfig, aiohttp_client: Any, tmp_path: Path) -> MakeClient:
    """A gateway test client; settings override GatewayConfig defaults."""

    async def make(**settings: Any) -> TestClient[Any, Any]:
        settings.setdefault("tmp_dir", tmp_path)
        settings.setdefault("no_responders_wait_s", 0.5)
        config = GatewayConfig(nats=nats_config, port=0, **settings)
        return await aiohttp_client(create_app(config))

    return make


@pytest.fixture
async def gateway(make_gateway: MakeClient) -> TestClient[Any, Any]:
    return await make_gateway()


@pytest.fixture
async def serving(start_modelhost: Any) -> Any:
    """One modelhost actor serving whatever the registry holds."""
    return await start_modelhost()


async def upload_file(
    client: TestClient[Any, Any],
    name: str,
    path: Path,
    description: str | None = None,
    method: str = "PUT",
) -> dict[str, Any]:
    """Upload through the REST API as a user would; returns the JSON answer (asserts 201)."""
    import aiohttp

    form = aiohttp.FormData()
    form.add_field(
        "path", path.read_bytes(), filename=path.name, content_type="application/octet-stream"
    )
    if description is not None:
        form.add_field("model_description", description)
    response = await client.request(method, f"/api/v1/models/{name}", data=form)
    body = await response.json()
    assert response.status == 201, body
    return body
