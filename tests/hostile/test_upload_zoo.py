"""Hostile uploads through the REST gateway (and the Python client): each a 4xx, the registry unchanged.

Real gateway on a real socket, real NATS registry, the real inspector
subprocess, real onnxruntime. After every hostile model file a good upload
must work: the inspector survived or was restarted.
"""

from __future__ import annotations

import asyncio
import gzip
import io
import resource
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any
from urllib.parse import quote

import pytest
from aiohttp.test_utils import TestClient
from nats.aio.client import Client
from nats.js.errors import NotFoundError

import mlbuffet
from mlbuffet.protocol import subjects
from mlbuffet.protocol.errors import MLBuffetError
from tests.hostile import hostile_files as files
from tests.hostile.hostile_files import MIB
from tests.onnx_models import ModelFiles

Gateway = TestClient[Any, Any]
LIMIT = 2 * MIB
"""The gateway's upload and request limit in these tests."""


async def snapshot(nc: Client) -> dict[str, Any]:
    """Every model record's raw JSON and every stored file's metadata (its digest included).

    Read from the streams with single API calls: nats-py's `kv.keys()` and
    `store.list()` follow a watcher that can come back empty on a loaded machine.
    """
    jsm = nc.jsm()
    state: dict[str, Any] = {}
    for stream, prefix in (
        (f"KV_{subjects.MODELS_BUCKET}", f"$KV.{subjects.MODELS_BUCKET}."),
        (f"OBJ_{subjects.FILES_BUCKET}", f"$O.{subjects.FILES_BUCKET}.M."),
    ):
        try:
            info = await jsm.stream_info(stream, subjects_filter=f"{prefix}>")
        except NotFoundError:
            continue  # nothing uploaded yet
        for subject in sorted(info.state.subjects or {}):
            last = await jsm.get_last_msg(stream, subject)
            state[subject] = last.data
    return state


def peak_rss_bytes() -> int:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024


BOUNDARY = "hostile-boundary-7f3a"


def multipart(filename: str, data: bytes, field: str = "path", **fields: str) -> bytes:
    """A form with one file, built by hand: aiohttp's FormData would percent-encode the name.

    The name goes in RFC 5987 `filename*` form, so any character reaches the server.
    """
    parts = [
        f'--{BOUNDARY}\r\nContent-Disposition: form-data; name="{field}"; '
        f"filename*=UTF-8''{quote(filename, safe='')}\r\n"
        "Content-Type: application/octet-stream\r\n\r\n".encode()
        + data
        + b"\r\n"
    ]
    for key, value in fields.items():
        parts.append(
            f'--{BOUNDARY}\r\nContent-Disposition: form-data; name="{key}"\r\n\r\n'
            f"{value}\r\n".encode()
        )
    return b"".join(parts) + f"--{BOUNDARY}--\r\n".encode()


FORM_TYPE = f"multipart/form-data; boundary={BOUNDARY}"


async def put_file(
    client: Gateway, name: str, data: bytes, filename: str = "model.onnx", **fields: str
) -> tuple[int, str]:
    response = await client.put(
        f"/api/v1/models/{quote(name, safe='')}",
        data=io.BytesIO(multipart(filename, data, **fields)),
        headers={"Content-Type": FORM_TYPE},
    )
    return response.status, await response.text()


def model_cases(model_files: ModelFiles) -> list[tuple[str, bytes, str, int, str]]:
    """(label, file bytes, file name, expected status, words the message must contain)."""
    good = model_files.add_one.read_bytes()
    cases = [
        ("text file", b"hello, I am not a model\n" * 10, "model.onnx", 422, "not an ONNX model"),
        ("empty file", b"", "model.onnx", 422, "not an ONNX model"),
        ("PNG", files.png_bytes(), "model.onnx", 422, "not an ONNX model"),
        ("zip bomb as model.onnx", files.zip_bomb(), "model.onnx", 422, "not an ONNX model"),
        ("zip bomb as model.zip", files.zip_bomb(64 * MIB), "model.zip", 415, "only ONNX"),
        ("initializer of 2**31 x 2**31", files.initializer_bomb(), "m.onnx", 422, "ONNX"),
        ("input of 2**31 x 2**31", files.declared_input_bomb([2**31, 2**31]), "m.onnx", 422,
         "no request can carry"),
        ("input of 2**16 x 2**16 (16 GiB)", files.declared_input_bomb([2**16, 2**16]), "m.onnx",
         422, "no request can carry"),
        ("weights outside the file", files.external_data_bomb(), "m.onnx", 422, "ONNX"),
    ]  # fmt: skip
    for cut in (1, 16, len(good) // 3, len(good) // 2, len(good) - 9, len(good) - 1):
        cases.append((f"ONNX cut at {cut}/{len(good)}", good[:cut], "m.onnx", 422, "ONNX"))
    return cases


BAD_FILENAMES = [
    ("../../etc/passwd.onnx", "without folders"),
    ("..", "without folders"),
    ("dir\\model.onnx", "without folders"),
    ("model\x00.onnx", "control characters"),
    ("model\r\nX-Evil: 1.onnx", "control characters"),
    ("mo\u202edel.onnx", "control characters"),
    ("m" * 300 + ".onnx", "1 to 255 characters"),
]

BAD_NAMES = [
    "..",
    ".",
    "a/b",
    "a\\b",
    "a\x00b",
    "a\nb",
    "a b",
    "a.b",
    "*",
    ">",
    "\u0430dder",  # Cyrillic a: looks like "adder"
    "\uff41\uff44\uff44\uff45\uff52",  # fullwidth "adder"
    "x" * 65,
    "x" * 5000,
    "information",
]


@pytest.fixture
async def client(make_gateway: Callable[..., Awaitable[Gateway]]) -> Gateway:
    return await make_gateway(max_upload_bytes=LIMIT, max_request_bytes=LIMIT)


async def test_hostile_model_files_are_refused_and_the_inspector_survives(
    client: Gateway, nc: Client, model_files: ModelFiles
) -> None:
    status, text = await put_file(client, "good", model_files.add_one.read_bytes())
    assert status == 201, text
    assert len(await snapshot(nc)) == 2  # the record and the file: the snapshot sees them
    for label, data, filename, expected, words in model_cases(model_files):
        before = await snapshot(nc)
        status, text = await put_file(client, "hostile", data, filename=filename)
        assert (status, words in text) == (expected, True), f"{label}: {status} {text[:300]}"
        assert await snapshot(nc) == before, f"{label}: the registry changed"
        status, text = await put_file(client, "good", model_files.add_one.read_bytes())
        assert status == 201, f"good upload after {label}: {text[:300]}"


async def test_hostile_file_and_model_names_are_refused(
    client: Gateway, nc: Client, model_files: ModelFiles
) -> None:
    good = model_files.add_one.read_bytes()
    before = await snapshot(nc)
    for filename, words in BAD_FILENAMES:
        status, text = await put_file(client, "named", good, filename=filename)
        assert (status, words in text) == (400, True), f"{filename!r}: {status} {text[:300]}"
    for name in BAD_NAMES:
        status, text = await put_file(client, name, good)
        assert 400 <= status < 500, f"{name!r}: {status} {text[:300]}"
        if status == 400:
            assert "invalid model name" in text, text
    # A name in the URL that the router splits or normalises: a 4xx, never a stored model.
    for path in ("/api/v1/models/%2E%2E%2Fx", "/api/v1/models/a%2Fb", "/api/v1/models/%2E%2E"):
        response = await client.put(
            path, data=multipart("m.onnx", good), headers={"Content-Type": FORM_TYPE}
        )
        assert 400 <= response.status < 500, f"{path}: {response.status}"
    assert await snapshot(nc) == before


async def test_the_python_client_refuses_the_same_files(
    nats_config: Any, nc: Client, model_files: ModelFiles, tmp_path: Path
) -> None:
    async with await mlbuffet.Client.connect(nats_config.urls[0]) as mb:
        before = await snapshot(nc)
        for label, data, filename, expected, words in model_cases(model_files):
            if not filename.endswith(".onnx"):
                continue
            with pytest.raises(MLBuffetError) as raised:
                await mb.upload("hostile", data)
            assert (raised.value.status, words in raised.value.message) == (expected, True), label
        for filename, _ in BAD_FILENAMES:
            with pytest.raises(MLBuffetError) as raised:
                await mb.upload("hostile", model_files.add_one.read_bytes(), filename=filename)
            assert raised.value.status == 400, filename
        assert await snapshot(nc) == before
        uploaded = await mb.upload("good", model_files.add_one)
        assert uploaded.version == 1


async def test_a_file_over_the_limit_is_refused_while_streaming(
    client: Gateway, nc: Client
) -> None:
    """Chunked, no Content-Length: the 413 arrives long before the client has sent it all."""
    before = await snapshot(nc)
    total = 256 * MIB
    reader, writer = await asyncio.open_connection(client.server.host, client.server.port)
    boundary = "hostileboundary"
    writer.write(
        (
            "PUT /api/v1/models/streamed HTTP/1.1\r\n"
            f"Host: {client.server.host}\r\n"
            f"Content-Type: multipart/form-data; boundary={boundary}\r\n"
            "Transfer-Encoding: chunked\r\n\r\n"
        ).encode()
    )
    head = (
        f'--{boundary}\r\nContent-Disposition: form-data; name="path"; filename="m.onnx"\r\n'
        "Content-Type: application/octet-stream\r\n\r\n"
    ).encode()
    writer.write(b"%x\r\n%s\r\n" % (len(head), head))
    answer = asyncio.create_task(reader.readuntil(b"\r\n\r\n"))
    chunk = bytes(256 * 1024)
    framed = b"%x\r\n%s\r\n" % (len(chunk), chunk)
    sent = 0
    try:
        while sent < total and not answer.done():
            writer.write(framed)
            sent += len(chunk)
            drained = asyncio.create_task(writer.drain())
            await asyncio.wait({drained, answer}, timeout=10, return_when=asyncio.FIRST_COMPLETED)
            if not drained.done():
                drained.cancel()
                break  # the server stopped reading: its answer must be on the way
        head_lines = (await asyncio.wait_for(answer, 10)).decode()
    except (ConnectionError, asyncio.IncompleteReadError) as exc:
        pytest.fail(
            f"the gateway dropped the connection without an answer after {sent} bytes: {exc}"
        )
    finally:
        writer.close()
    print(f"\n413 after {sent / MIB:.1f} MiB of a {total / MIB:.0f} MiB chunked upload")
    assert head_lines.startswith("HTTP/1.1 413"), head_lines
    assert sent < total / 4
    assert await snapshot(nc) == before


async def test_a_declared_length_over_the_limit_is_refused_before_reading(client: Gateway) -> None:
    reader, writer = await asyncio.open_connection(client.server.host, client.server.port)
    writer.write(
        (
            "PUT /api/v1/models/declared HTTP/1.1\r\n"
            f"Host: {client.server.host}\r\n"
            "Content-Type: multipart/form-data; boundary=b\r\n"
            f"Content-Length: {10 * 1024 * MIB}\r\n\r\n"
        ).encode()
    )
    await writer.drain()
    head = (await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 10)).decode()
    writer.close()
    assert head.startswith("HTTP/1.1 413"), head


async def test_gzip_bombs_are_refused_while_inflating(
    client: Gateway, serving: Any, upload: Any, model_files: ModelFiles, nc: Client
) -> None:
    """1 GiB of zeros in 1 MiB of gzip, to a 2 MiB-limited route: 413, and never inflated."""
    await upload("adder", model_files.add_one)
    bomb = files.gzip_bomb()
    head = multipart("m.onnx", b"").split(b"\r\n\r\n", 1)[0] + b"\r\n\r\n"
    form_bomb = gzip.compress(head) + bomb  # gzip members concatenate: a form whose file is 1 GiB
    before = await snapshot(nc)
    peak = peak_rss_bytes()
    for method, path, content_type, body in (
        ("POST", "/v2/models/adder/infer", "application/json", bomb),
        ("POST", "/api/v1/models/adder/prediction", "application/json", bomb),
        ("PUT", "/api/v1/models/zipped", FORM_TYPE, form_bomb),
        ("POST", "/api/v1/models/adder/prediction", FORM_TYPE, form_bomb),
    ):
        response = await client.request(
            method,
            path,
            data=io.BytesIO(body),
            headers={"Content-Encoding": "gzip", "Content-Type": content_type},
        )
        text = await response.text()
        assert response.status == 413, f"{path}: {response.status} {text[:300]}"
    grown = peak_rss_bytes() - peak
    print(f"\npeak RSS grew by {grown / MIB:.0f} MiB over three 1 GiB gzip bombs")
    assert grown < 256 * MIB
    assert await snapshot(nc) == before


IMAGE_BOMBS = [
    ("PNG declaring 30000x30000", files.png_declaring(30000, 30000), 413),
    ("PNG declaring 10000x10000 (over pillow's warning)", files.png_declaring(10000, 10000), 413),
    ("PNG declaring 8193x8193 (over MLBuffet's limit)", files.png_declaring(8193, 8193), 413),
    ("GIF declaring 65535x65535", files.gif_declaring(65535, 65535), 413),
    ("JPEG declaring 60000x60000", files.jpeg_declaring(60000, 60000), 413),
    ("PNG with a 64 MiB text chunk", files.png_text_bomb(), 415),
    ("truncated PNG", files.png_bytes()[:40], 415),
    ("zip bomb as an image", files.zip_bomb(64 * MIB), 415),
    ("text as an image", b"GIF89a? no", 415),
]


async def test_image_bombs_on_the_prediction_route(
    client: Gateway, serving: Any, upload: Any, model_files: ModelFiles
) -> None:
    await upload("nchw", model_files.nchw)
    await upload("nhwc", model_files.nhwc)
    peak = peak_rss_bytes()
    for model in ("nchw", "nhwc"):
        for label, data, expected in IMAGE_BOMBS:
            for method in ("POST", "GET"):
                response = await client.request(
                    method,
                    f"/api/v1/models/{model}/prediction",
                    data=io.BytesIO(multipart("image.png", data, field="file")),
                    headers={"Content-Type": FORM_TYPE},
                )
                text = await response.text()
                assert response.status == expected, f"{model} {label}: {response.status} {text}"
        response = await client.post(
            f"/api/v1/models/{model}/prediction",
            data=multipart("ok.png", files.png_bytes((64, 64)), field="file"),
            headers={"Content-Type": FORM_TYPE},
        )
        assert response.status == 200, await response.text()
    grown = peak_rss_bytes() - peak
    print(f"\npeak RSS grew by {grown / MIB:.0f} MiB over {len(IMAGE_BOMBS) * 4} image bombs")
    assert grown < 512 * MIB


def training_form(dataset_name: str, dataset: bytes) -> bytes:
    files_ = [("script", "train.py", b"print(1)\n"), ("requirements", "requirements.txt", b"")]
    parts = [
        multipart(filename, data, field=field).rsplit(f"--{BOUNDARY}--".encode(), 1)[0]
        for field, filename, data in [*files_, ("dataset", dataset_name, dataset)]
    ]
    return b"".join(parts) + f"--{BOUNDARY}--\r\n".encode()


async def test_training_datasets_are_stored_opaque_and_hostile_names_refused(
    client: Gateway, nc: Client
) -> None:
    """A zip bomb dataset is a 2 MiB file to MLBuffet: never unpacked (here no trainer runs: 503)."""
    before = await snapshot(nc)
    peak = peak_rss_bytes()
    response = await client.post(
        "/api/v1/train/zipped",
        data=io.BytesIO(training_form("data.zip", files.zip_bomb())),
        headers={"Content-Type": FORM_TYPE},
    )
    text = await response.text()
    assert response.status == 503 and "trainer" in text, text
    assert peak_rss_bytes() - peak < 256 * MIB
    for name in ("..", "a\x00.csv", "a\nb.csv", ".hidden", "x" * 200):
        response = await client.post(
            "/api/v1/train/named",
            data=io.BytesIO(training_form(name, b"1,2\n")),
            headers={"Content-Type": FORM_TYPE},
        )
        text = await response.text()
        assert response.status == 400 and "invalid file name" in text, f"{name!r}: {text}"
    assert await snapshot(nc) == before
