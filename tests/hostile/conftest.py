"""The gateway fixtures, shared with tests/gateway."""

from tests.gateway.conftest import gateway, make_gateway, serving  # noqa: F401 - fixtures
