"""The REST routes, each with the one-line summary that /help shows."""

from gateway.routes import models, observe, prediction, root
from gateway.routes.table import Route

ROUTES: tuple[Route, ...] = (*root.ROUTES, *models.ROUTES, *prediction.ROUTES, *observe.ROUTES)

__all__ = ["ROUTES", "Route"]
