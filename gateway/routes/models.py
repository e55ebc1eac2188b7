"""Model management: list, describe, upload, delete, choose the default, download."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any
from urllib.parse import quote

from aiohttp import web

from gateway.envelope import reply
from gateway.routes.common import json_body, json_object, mesh_of, model_name, model_ref
from gateway.routes.table import SMALL_BODY_BYTES, Route
from gateway.uploads import read_form, spool_folder
from mlbuffet.apikeys import Scope
from mlbuffet.protocol.errors import UnprocessableError, UnsupportedMediaTypeError
from mlbuffet.protocol.names import ModelRef, parse_model_name, parse_upload_filename
from mlbuffet.protocol.records import ModelSettings, VersionRecord
from mlbuffet.registry.details import model_details

UPLOAD_FIELDS = ("path", "file")
"""Form fields that may carry the model file: `path` as in the original API, or `file`."""
DOWNLOAD_CHUNK_BYTES = 1 << 20


def version_summary(record: VersionRecord) -> dict[str, Any]:
    """A version as the original API's `tag_list_versions` showed it, plus what we know more."""
    return {
        "description": record.description,
        "file": record.filename,
        "time": record.uploaded_at,
        "library": record.library,
        "sha256": record.sha256,
        "size": record.size,
    }


def settings_from_form(fields: dict[str, str]) -> ModelSettings | None:
    """Settings given as upload form fields (None if none is); numbers as text.

    preferred_batch_sizes is a list: "4,8" or "[4, 8]".
    """
    given = {name: fields[name].strip() for name in ModelSettings.FIELDS if name in fields}
    if not given:
        return None
    raw: dict[str, Any] = {}
    for name, text in given.items():
        try:
            if name == "preferred_batch_sizes":
                items = text.strip("[]").replace(",", " ").split()
                raw[name] = [int(item) for item in items]
            else:
                raw[name] = int(text) if text else None
        except ValueError:
            raise UnprocessableError(f"form field {name!r} must hold whole numbers") from None
    return ModelSettings.from_dict(raw)


async def list_models(request: web.Request) -> web.Response:
    records = mesh_of(request).view.records
    return reply(200, model_list=sorted(records))


async def list_information(request: web.Request) -> web.Response:
    records = mesh_of(request).view.records
    return reply(
        200,
        model_list=[
            {
                "model": r.name,
                "description": r.description,
                "default_version": r.default_version,
                "versions": sorted(r.versions),
            }
            for r in sorted(records.values(), key=lambda r: r.name)
        ],
    )


async def get_model(request: web.Request) -> web.Response:
    ref = model_ref(request)
    record = await mesh_of(request).view.get(ref.name)
    return reply(200, **model_details(record, record.version(ref.version)))


async def get_information(request: web.Request) -> web.Response:
    name = model_name(request)
    record = await mesh_of(request).view.get(name)
    return reply(
        200,
        model=record.name,
        description=record.description,
        default_version=record.default_version,
        tag_list_versions={str(v): version_summary(r) for v, r in sorted(record.versions.items())},
    )


async def update_or_upload(request: web.Request) -> web.Response:
    """POST is an upload when the body is a form (MLBuffet v2), else a description update."""
    if request.content_type.startswith("multipart/"):
        return await upload(request)
    name = model_name(request)
    body = json_object(await json_body(request), '{"model_description": "..."}')
    if "model_description" not in body:
        raise UnprocessableError("No model_description provided")
    description = body["model_description"]
    if not isinstance(description, str):
        raise UnprocessableError("model_description must be a string")
    record = await mesh_of(request).admin.set_description(name, description)
    return reply(200, "Model description updated", model=name, description=record.description)


async def upload(request: web.Request) -> web.Response:
    name = model_name(request)
    mesh = mesh_of(request)
    if not request.content_type.startswith("multipart/"):
        raise UnsupportedMediaTypeError(
            "upload the model as multipart/form-data with the file in the field 'path'"
        )
    with spool_folder(mesh.config.tmp_dir) as folder:
        form = await read_form(
            request, folder, file_limit=mesh.config.max_upload_bytes, what="the model file"
        )
        spooled = next((form.files[f] for f in UPLOAD_FIELDS if f in form.files), None)
        if spooled is None:
            raise UnprocessableError("No file path (named 'path') specified")
        if spooled.filename:
            parse_upload_filename(spooled.filename)  # before the costly inspection
        suffix = Path(spooled.filename).suffix.lower()
        if suffix and suffix != ".onnx":
            raise UnsupportedMediaTypeError(
                f"{spooled.filename!r}: only ONNX models (.onnx) can be uploaded"
            )
        settings = settings_from_form(form.fields)
        model = await mesh.inspector.inspect(spooled.path, sha256=spooled.sha256, size=spooled.size)
        if settings is not None:
            settings.check_batchable(model.signature)
        record, version = await mesh.admin.upload(
            name,
            model,
            description=form.fields.get("model_description"),
            filename=spooled.filename or f"{name}.onnx",
            settings=settings,
        )
    return reply(
        201,
        f"Model {name} version {version} uploaded",
        model=name,
        version=version,
        default_version=record.default_version,
        settings=record.settings.to_dict(),
        **{"sha256": record.versions[version].sha256, "size": record.versions[version].size},
    )


async def delete(request: web.Request) -> web.Response:
    """`<m>` and `<m>:default` delete the default version, `<m>:N` version N, `<m>:all` every one."""
    raw = request.match_info["ref"]
    mesh = mesh_of(request)
    if raw.endswith(":all"):
        name = parse_model_name(raw[: -len(":all")])
        gone = await mesh.admin.delete_model(name)
        return reply(
            200, f"Model {name} deleted", model=name, deleted_versions=sorted(gone.versions)
        )
    ref = ModelRef.parse(raw)
    record, deleted = await mesh.admin.delete_version(ref.name, ref.version)
    return reply(
        200,
        f"Model {ref.name} version {deleted} deleted",
        model=ref.name,
        deleted_version=deleted,
        default_version=record.default_version if record else None,
        versions=sorted(record.versions) if record else [],
    )


async def set_default(request: web.Request) -> web.Response:
    name = model_name(request)
    body = json_object(await json_body(request), '{"default": 2}')
    if "default" not in body:
        raise UnprocessableError("No default value provided")
    version = body["default"]
    if not isinstance(version, int) or isinstance(version, bool) or version < 1:
        raise UnprocessableError("Default value must be a positive integer")
    record = await mesh_of(request).admin.set_default(name, version)
    return reply(
        200,
        f"Model {name} default version is {version}",
        model=name,
        default_version=record.default_version,
    )


async def get_settings(request: web.Request) -> web.Response:
    name = model_name(request)
    record = await mesh_of(request).view.get(name)
    return reply(200, model=name, settings=record.settings.to_dict())


async def put_settings(request: web.Request) -> web.Response:
    """Replace a model's batching, execution and replica settings; omitted ones take their defaults."""
    name = model_name(request)
    body = json_object(await json_body(request), '{"max_batch_size": 8, "max_queue_delay_us": 500}')
    settings = ModelSettings.from_dict(body)
    record = await mesh_of(request).admin.set_settings(name, settings)
    return reply(
        200, f"Model {name} settings updated", model=name, settings=record.settings.to_dict()
    )


async def download(request: web.Request) -> web.StreamResponse:
    ref = model_ref(request)
    mesh = mesh_of(request)
    with spool_folder(mesh.config.tmp_dir) as folder:
        path = folder / "model.onnx"
        with path.open("wb") as sink:
            version = await mesh.registry.download(ref.name, ref.version, sink)
            size = sink.tell()
        filename = version.filename or f"{ref.name}.onnx"
        response = web.StreamResponse(
            headers={
                "Content-Type": "application/octet-stream",
                "Content-Disposition": f"attachment; filename*=UTF-8''{quote(filename)}",
                "Content-Length": str(size),
                "X-Model-Version": str(version.version),
                "X-Model-Sha256": version.sha256,
            }
        )
        await response.prepare(request)
        loop = asyncio.get_running_loop()
        with path.open("rb") as source:
            while chunk := await loop.run_in_executor(None, source.read, DOWNLOAD_CHUNK_BYTES):
                await response.write(chunk)
        await response.write_eof()
    return response


ROUTES = (
    Route("GET", "/api/v1/models", list_models, "list model names", Scope.READ, SMALL_BODY_BYTES),
    Route(
        "GET",
        "/api/v1/models/information",
        list_information,
        "every model with its description",
        Scope.READ,
        SMALL_BODY_BYTES,
    ),
    Route(
        "GET",
        "/api/v1/models/{ref}/information",
        get_information,
        "versions of a model (tag_list_versions) and its default",
        Scope.READ,
        SMALL_BODY_BYTES,
    ),
    Route(
        "GET",
        "/api/v1/models/{ref}/download",
        download,
        "download a model file: <model>, <model>:default or <model>:<version>",
        Scope.READ,
        SMALL_BODY_BYTES,
    ),
    Route(
        "POST",
        "/api/v1/models/{ref}/default",
        set_default,
        'set the default version: {"default": <version>}',
        Scope.WRITE,
        SMALL_BODY_BYTES,
    ),
    Route(
        "GET",
        "/api/v1/models/{ref}/settings",
        get_settings,
        "a model's batching, execution and replica settings",
        Scope.READ,
    ),
    Route(
        "PUT",
        "/api/v1/models/{ref}/settings",
        put_settings,
        'replace them: {"max_batch_size", "max_queue_delay_us", "preferred_batch_sizes", "intra_op_threads", "sessions", "min_replicas", "max_replicas"}',
        Scope.WRITE,
        SMALL_BODY_BYTES,
    ),
    Route(
        "GET",
        "/api/v1/models/{ref}",
        get_model,
        "one model: description, versions, default, inputs and outputs (<model>[:<version>])",
        Scope.READ,
        SMALL_BODY_BYTES,
    ),
    Route(
        "POST",
        "/api/v1/models/{ref}",
        update_or_upload,
        'update the description {"model_description": "..."}, or upload a form as with PUT',
        Scope.WRITE,
    ),
    Route(
        "PUT",
        "/api/v1/models/{ref}",
        upload,
        "upload a new version (multipart field 'path', optional 'model_description' and settings fields); it becomes the default",
        Scope.WRITE,
    ),
    Route(
        "DELETE",
        "/api/v1/models/{ref}",
        delete,
        "delete the default version (<model> or <model>:default), one version (<model>:<version>) or all (<model>:all)",
        Scope.WRITE,
        SMALL_BODY_BYTES,
    ),
)
