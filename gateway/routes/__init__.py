"""The REST routes, each with the one-line summary that /help shows."""

from gateway.routes import models, prediction, root, train
from gateway.routes.table import Route

ROUTES: tuple[Route, ...] = (*root.ROUTES, *models.ROUTES, *prediction.ROUTES, *train.ROUTES)

__all__ = ["ROUTES", "Route"]
