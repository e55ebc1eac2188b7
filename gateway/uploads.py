"""Reading multipart forms: files stream to disk under a hard cap, small fields to memory."""

from __future__ import annotations

import asyncio
import hashlib
import os
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

from aiohttp import BodyPartReader, MultipartReader, web
from aiohttp.http_exceptions import HttpProcessingError

from mlbuffet.protocol.errors import BadRequestError, PayloadTooLargeError

CHUNK_BYTES = 1 << 20
MAX_FIELD_BYTES = 64 * 1024
"""Text fields (a description, a setting) are small."""


@dataclass
class SpooledFile:
    """A file field written to disk, with the sha256 and size computed on the way."""

    path: Path
    filename: str
    content_type: str
    sha256: str
    size: int


@dataclass
class Form:
    files: dict[str, SpooledFile] = field(default_factory=dict)
    fields: dict[str, str] = field(default_factory=dict)


async def _spool(part: BodyPartReader, folder: Path, limit: int, what: str) -> SpooledFile:
    fd, name = tempfile.mkstemp(dir=folder, suffix=".upload")
    path = Path(name)
    digest = hashlib.sha256()
    size = 0
    loop = asyncio.get_running_loop()
    try:
        with os.fdopen(fd, "wb") as out:
            while chunk := await part.read_chunk(CHUNK_BYTES):
                size += len(chunk)
                if size > limit:
                    raise PayloadTooLargeError(f"{what} is over the limit of {limit} bytes")
                digest.update(chunk)
                await loop.run_in_executor(None, out.write, chunk)
    except BaseException:
        path.unlink(missing_ok=True)  # noqa: ASYNC240 - one syscall, on the error path
        raise
    return SpooledFile(
        path=path,
        filename=part.filename or "",
        content_type=part.headers.get("Content-Type", ""),
        sha256=digest.hexdigest(),
        size=size,
    )


@contextmanager
def spool_folder(base: Path | None) -> Iterator[Path]:
    with tempfile.TemporaryDirectory(prefix="mlbuffet-", dir=base) as folder:
        yield Path(folder)


async def read_form(
    request: web.Request, folder: Path, *, file_limit: int, what: str = "the file"
) -> Form:
    """Read a multipart/form-data body: every part with a filename is a file, the rest text."""
    length = request.content_length
    if length is not None and length > file_limit + MAX_FIELD_BYTES * 16:
        raise PayloadTooLargeError(f"{what} is over the limit of {file_limit} bytes")
    try:
        reader = await request.multipart()
    except (AssertionError, ValueError, KeyError):
        raise BadRequestError("the body is not a valid multipart/form-data form") from None
    return await _read_parts(reader, folder, file_limit, what)


async def _read_parts(reader: MultipartReader, folder: Path, file_limit: int, what: str) -> Form:
    form = Form()
    try:
        while (part := await reader.next()) is not None:
            if not isinstance(part, BodyPartReader):
                raise BadRequestError("nested multipart forms are not supported")
            name = part.name or ""
            if part.filename is not None:
                if name in form.files:
                    raise BadRequestError(f"form field {name!r} is given twice")
                form.files[name] = await _spool(part, folder, file_limit, what)
            else:
                raw = bytearray()
                while chunk := await part.read_chunk(CHUNK_BYTES):
                    raw += chunk
                    if len(raw) > MAX_FIELD_BYTES:
                        raise PayloadTooLargeError(
                            f"form field {name!r} is over {MAX_FIELD_BYTES} bytes"
                        )
                try:
                    form.fields[name] = bytes(raw).decode(part.get_charset("utf-8"))
                except (UnicodeDecodeError, LookupError):
                    raise BadRequestError(f"form field {name!r} is not valid text") from None
    except (ValueError, AssertionError, RuntimeError, HttpProcessingError) as exc:
        # HttpProcessingError: a part's headers do not parse (a control character in a name).
        raise BadRequestError(f"the multipart form is malformed ({exc})") from None
    return form
