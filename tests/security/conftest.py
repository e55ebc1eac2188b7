"""API keys of every scope, and a gateway that requires them."""

from __future__ import annotations

from typing import Any

import pytest
from aiohttp.test_utils import TestClient

from mlbuffet.apikeys import GRANTABLE, ApiKey, KeyRing, Scope, hash_key, new_key
from tests.gateway.conftest import gateway, make_gateway, serving

__all__ = ["gateway", "make_gateway", "serving"]  # the gateway tests' fixtures, shared


@pytest.fixture(scope="session")
def scoped_keys() -> dict[Scope, str]:
    """One fresh key per grantable scope (generated, never committed)."""
    return {scope: new_key() for scope in GRANTABLE}


@pytest.fixture(scope="session")
def key_ring(scoped_keys: dict[Scope, str]) -> KeyRing:
    return KeyRing(
        tuple(
            ApiKey(f"{scope.value}-key", frozenset({scope}), hash_key(key))
            for scope, key in scoped_keys.items()
        )
    )


@pytest.fixture
async def locked_gateway(make_gateway: Any, key_ring: KeyRing) -> TestClient[Any, Any]:
    return await make_gateway(api_keys=key_ring)
