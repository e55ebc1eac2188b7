"""The console: the /dashboard page, its scripts and vendored libraries, and /docs (Swagger UI).

The files are read from gateway/static once, at import: only what is there
is served, by name, with a content type from its suffix. The pages hold no
data (their scripts read the data routes with the key the user gives), so
they are public, and their CSP allows nothing but this gateway.
"""

from __future__ import annotations

from importlib.resources import files
from importlib.resources.abc import Traversable

from aiohttp import web

from gateway.routes.table import SMALL_BODY_BYTES, Route
from mlbuffet.apikeys import Scope

STATIC = files("gateway") / "static"
CONTENT_TYPES = {
    ".html": "text/html",
    ".js": "text/javascript",
    ".css": "text/css",
    ".md": "text/plain",
    ".txt": "text/plain",
    "": "text/plain",  # LICENSE, NOTICE: the vendored libraries' licences, readable
}
PAGE_HEADERS = {
    # Only our own files; the page talks only to this gateway. Swagger UI draws its
    # icons as data: SVGs and sets styles from script (allowed by 'self' + CSSOM).
    "Content-Security-Policy": (
        "default-src 'none'; script-src 'self'; style-src 'self'; connect-src 'self'; "
        "img-src 'self' data:; base-uri 'none'; form-action 'none'; frame-ancestors 'none'"
    ),
    "X-Content-Type-Options": "nosniff",
    "X-Frame-Options": "DENY",
    "Referrer-Policy": "no-referrer",
    "Cache-Control": "no-cache",
}


def _static_files(folder: Traversable, prefix: str = "") -> dict[str, Traversable]:
    found: dict[str, Traversable] = {}
    for entry in folder.iterdir():
        name = prefix + entry.name
        if entry.is_dir():
            found.update(_static_files(entry, name + "/"))
        elif _suffix(entry.name) in CONTENT_TYPES:
            found[name] = entry
    return found


def _suffix(name: str) -> str:
    return "." + name.rpartition(".")[2] if "." in name else ""


STATIC_FILES = _static_files(STATIC)
"""Relative path -> file: the whole of what these routes can serve."""


def _serve(name: str) -> web.Response:
    entry = STATIC_FILES.get(name)
    if entry is None:
        raise web.HTTPNotFound(text=f"no console file {name!r}")
    return web.Response(
        body=entry.read_bytes(),
        content_type=CONTENT_TYPES[_suffix(name)],
        charset="utf-8",
        headers=PAGE_HEADERS,
    )


async def dashboard(request: web.Request) -> web.Response:
    return _serve(request.match_info.get("file", "dashboard.html"))


async def vendored(request: web.Request) -> web.Response:
    return _serve(f"vendor/{request.match_info['package']}/{request.match_info['file']}")


async def api_docs(request: web.Request) -> web.Response:
    return _serve("docs.html")


ROUTES = (
    Route(
        "GET",
        "/dashboard",
        dashboard,
        "the console: charts, nodes, models (upload, try it), training, events",
        Scope.PUBLIC,
        SMALL_BODY_BYTES,
    ),
    Route(
        "GET",
        "/dashboard/{file}",
        dashboard,
        "the console's scripts and style",
        Scope.PUBLIC,
        SMALL_BODY_BYTES,
    ),
    Route(
        "GET",
        "/dashboard/vendor/{package}/{file}",
        vendored,
        "the console's vendored libraries (uPlot, Swagger UI) and their licences",
        Scope.PUBLIC,
        SMALL_BODY_BYTES,
    ),
    Route(
        "GET",
        "/docs",
        api_docs,
        "the REST API's OpenAPI document in Swagger UI, with try-it-out against this gateway",
        Scope.PUBLIC,
        SMALL_BODY_BYTES,
    ),
)
