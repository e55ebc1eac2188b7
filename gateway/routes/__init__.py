"""The REST routes, each with the one-line summary that /help shows."""

from gateway.routes import (
    console,
    models,
    monitoring,
    prediction,
    root,
    train,
    v2,
    v2_extensions,
    v2_repository,
)
from gateway.routes.table import Route

ROUTES: tuple[Route, ...] = (
    *root.ROUTES,
    *models.ROUTES,
    *prediction.ROUTES,
    *v2_extensions.ROUTES,
    *v2.ROUTES,
    *v2_repository.ROUTES,
    *monitoring.ROUTES,
    *console.ROUTES,
    *train.ROUTES,
)

__all__ = ["ROUTES", "Route"]
