"""The docker backend speaks TLS with client certificates to a tcp:// daemon, as with `--tlsverify`.

The daemon here listens on its local socket only, so the test puts a TLS
endpoint in front of it on 127.0.0.1 (an ephemeral port) that demands a
client certificate signed by a test CA, and forwards the bytes to the socket:
the backend's TLS settings are what gets it through.
"""

from __future__ import annotations

import asyncio
import contextlib
import ssl
import subprocess
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from actors.trainer.config import DockerConfig
from actors.trainer.docker import DockerBackend

DOCKER_SOCKET = "/var/run/docker.sock"


def openssl(*args: str, cwd: Path) -> None:
    subprocess.run(["openssl", *args], cwd=cwd, check=True, capture_output=True, timeout=60)


@pytest.fixture
def certificates(tmp_path: Path) -> Path:
    """A CA, a server certificate for 127.0.0.1 and a client certificate, made with openssl."""
    openssl(
        "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1", "-subj", "/CN=test-ca",
        "-keyout", "ca.key", "-out", "ca.pem", cwd=tmp_path,
    )  # fmt: skip
    for name, extension in (
        ("server", "subjectAltName=IP:127.0.0.1\nextendedKeyUsage=serverAuth\n"),
        ("client", "extendedKeyUsage=clientAuth\n"),
    ):
        (tmp_path / f"{name}.ext").write_text(extension)
        openssl(
            "req", "-newkey", "rsa:2048", "-nodes", "-subj", f"/CN={name}",
            "-keyout", f"{name}.key", "-out", f"{name}.csr", cwd=tmp_path,
        )  # fmt: skip
        openssl(
            "x509", "-req", "-in", f"{name}.csr", "-CA", "ca.pem", "-CAkey", "ca.key",
            "-CAcreateserial", "-days", "1", "-extfile", f"{name}.ext", "-out", f"{name}.pem",
            cwd=tmp_path,
        )  # fmt: skip
    return tmp_path


async def _pipe(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    try:
        while chunk := await reader.read(1 << 16):
            writer.write(chunk)
            await writer.drain()
    except (ConnectionError, ssl.SSLError):
        pass
    finally:
        with contextlib.suppress(Exception):
            writer.close()


@pytest.fixture
async def tls_daemon(certificates: Path) -> AsyncIterator[str]:
    """tcp://127.0.0.1:<port>: TLS with required client certificates, in front of the local daemon."""
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH, cafile=certificates / "ca.pem")
    context.load_cert_chain(certificates / "server.pem", certificates / "server.key")
    context.verify_mode = ssl.CERT_REQUIRED
    pipes: set[asyncio.Task[None]] = set()

    async def serve(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        daemon_reader, daemon_writer = await asyncio.open_unix_connection(DOCKER_SOCKET)
        for task in (
            asyncio.create_task(_pipe(reader, daemon_writer)),
            asyncio.create_task(_pipe(daemon_reader, writer)),
        ):
            pipes.add(task)
            task.add_done_callback(pipes.discard)

    server = await asyncio.start_server(serve, "127.0.0.1", 0, ssl=context)
    port = server.sockets[0].getsockname()[1]
    yield f"tcp://127.0.0.1:{port}"
    server.close()
    for task in list(pipes):
        task.cancel()
    await asyncio.gather(*pipes, return_exceptions=True)
    await server.wait_closed()


def backend(
    url: str, certificates: Path, *, with_client_certificate: bool, image: str = "absent:never"
) -> DockerBackend:
    config = DockerConfig(
        url=url,
        tls_ca_file=str(certificates / "ca.pem"),
        tls_cert_file=str(certificates / "client.pem") if with_client_certificate else None,
        tls_key_file=str(certificates / "client.key") if with_client_certificate else None,
        image=image,
    )
    return DockerBackend(config, memory_bytes=1 << 30, cpus=1, install_timeout_s=60)


async def test_the_docker_backend_reaches_a_tls_daemon_with_its_client_certificate(
    tls_daemon: str, certificates: Path, docker_image: str
) -> None:
    docker = backend(tls_daemon, certificates, with_client_certificate=True, image=docker_image)
    try:
        notes = await docker.start()
        assert "docker backend (daemon " in notes[0]
        assert (await docker.docker.images.inspect(docker_image))["Id"]
    finally:
        await docker.close()


async def test_without_a_client_certificate_the_tls_daemon_refuses_the_backend(
    tls_daemon: str, certificates: Path
) -> None:
    docker = backend(tls_daemon, certificates, with_client_certificate=False)
    with pytest.raises(RuntimeError, match="cannot reach its daemon"):
        await docker.start()
