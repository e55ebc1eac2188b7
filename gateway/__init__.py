"""The REST gateway: HTTP in, NATS requests out."""

from gateway.app import create_app
from gateway.config import GatewayConfig

__all__ = ["GatewayConfig", "create_app"]
