"""Actors on a real nats-server with TLS and the shipped per-role users (deploy/nats/auth.conf).

The gateway and a modelhost run as their own users and serve the whole REST
flow without one permissions violation; what a role may not do is refused by
the server itself, as nats-py's error callback reports.
"""

from __future__ import annotations

import logging
import os
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import nats.errors
import nkeys
import numpy as np
import pytest
from aiohttp.test_utils import TestClient

from actors.modelhost.config import ModelhostConfig
from actors.modelhost.service import ModelhostService
from gateway.app import create_app
from gateway.config import GatewayConfig
from mlbuffet.config import NatsConfig
from mlbuffet.mesh.connection import NatsUnavailableError, close_quietly, connect
from mlbuffet.natsd.server import NatsServer, NatsServerConfig
from mlbuffet.natsd.users import (
    FILES_STREAM,
    MODELS_STREAM,
    ROLES,
    Secret,
    deploy_config,
    render_user,
)
from mlbuffet.protocol import subjects
from mlbuffet.protocol.inference import InferRequest, InferResponse, Tensor
from mlbuffet.protocol.tensors import encode_array
from mlbuffet.protocol.wire import pack, unpack
from mlbuffet.roles.node_ids import new_node_id
from tests.conftest import eventually
from tests.gateway.conftest import upload_file
from tests.security.nats_secure import DEPLOY_AUTH, SecureNats, probe, start_secure_nats

IRIS_ROW = [5.1, 3.5, 1.4, 0.2]
VIOLATION_LOG = "permissions violation"


@pytest.fixture
async def start_secure(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> AsyncIterator[Any]:
    """Start the TLS server with the deploy users; the passwords go through os.environ."""
    servers: list[SecureNats] = []

    class Environment(dict[str, str]):
        """What start_secure_nats sets lands in os.environ (undone after the test)."""

        def __setitem__(self, key: str, value: str) -> None:
            monkeypatch.setenv(key, value)
            super().__setitem__(key, value)

    async def start() -> SecureNats:
        secure = await start_secure_nats(tmp_path, Environment())
        servers.append(secure)
        return secure

    yield start
    for server in servers:
        await server.server.stop()


@dataclass
class SecuredMesh:
    nats: SecureNats
    gateway: TestClient[Any, Any]
    host: ModelhostService


@pytest.fixture
async def mesh(
    start_secure: Any, aiohttp_client: Any, tmp_path: Path, seed_iris: Path, caplog: Any
) -> AsyncIterator[SecuredMesh]:
    """The gateway (creates the registry) and one modelhost, each as its own user, iris served."""
    caplog.set_level(logging.INFO)
    secure = await start_secure()
    config = GatewayConfig(
        nats=secure.config("gateway"), port=0, tmp_dir=tmp_path, no_responders_wait_s=3.0
    )
    gateway = await aiohttp_client(create_app(config))
    host_nc = await connect(secure.config("modelhost"), name="secure-modelhost")
    host = ModelhostService(
        host_nc, ModelhostConfig(nats=secure.config("modelhost")), new_node_id("modelhost")
    )
    await host.start()
    await upload_file(gateway, "iris", seed_iris, "the seed's iris")
    await eventually(lambda: "iris" in host.served)
    yield SecuredMesh(secure, gateway, host)
    await host.drain(5)
    await close_quietly(host_nc)


def violations_logged(caplog: Any) -> list[str]:
    return [r.getMessage() for r in caplog.records if VIOLATION_LOG in r.getMessage().lower()]


def iris_request() -> InferRequest:
    datatype, shape, data = encode_array(np.array([IRIS_ROW], np.float32))
    return InferRequest("iris", (Tensor("float_input", datatype, tuple(shape), data),))


async def test_the_whole_rest_flow_runs_with_least_privilege(
    mesh: SecuredMesh, caplog: Any, seed_iris: Path
):
    client = mesh.gateway
    predicted = await client.post("/api/v1/models/iris/prediction", json={"values": [IRIS_ROW]})
    assert predicted.status == 200, await predicted.text()
    assert (await predicted.json())["values"] == [0]
    v2 = await client.post(
        "/v2/models/iris/infer",
        json={
            "inputs": [
                {"name": "float_input", "datatype": "FP32", "shape": [1, 4], "data": IRIS_ROW}
            ]
        },
    )
    assert v2.status == 200, await v2.text()
    echoed = await client.post("/api/test/sendtomodelhost", json={"data": [1, 2, 3]})
    assert echoed.status == 200
    await upload_file(client, "iris", seed_iris)  # version 2: the modelhost loads it
    await eventually(lambda: mesh.host.served["iris"].default.version == 2)
    download = await client.get("/api/v1/models/iris:1/download")
    assert download.status == 200 and await download.read() == seed_iris.read_bytes()
    assert (await client.post("/api/v1/models/iris/default", json={"default": 1})).status == 200
    assert (await client.get("/api/v1/models/iris")).status == 200
    assert (await client.post("/v2/repository/models/iris/unload")).status == 200
    assert (await client.post("/v2/repository/models/iris/load")).status == 200
    assert (await client.get("/v2/health/ready")).status == 200
    assert (await client.delete("/api/v1/models/iris:all")).status == 200
    await eventually(lambda: "iris" not in mesh.host.served)
    assert violations_logged(caplog) == []


async def test_a_predict_only_user_predicts_and_touches_nothing_else(mesh: SecuredMesh):
    client = await probe(mesh.nats.config("predict"))
    try:
        reply = await client.nc.request(subjects.infer("iris"), pack(iris_request()), timeout=5)
        answer = unpack(reply.data, InferResponse.from_dict)
        assert answer.outputs and answer.model == "iris"
        assert client.refused() == []

        js = client.nc.jetstream(timeout=1)
        with pytest.raises((nats.errors.TimeoutError, nats.errors.NoRespondersError)):
            await js.key_value(subjects.MODELS_BUCKET)
        await client.wait_refused(f"$JS.API.STREAM.INFO.{MODELS_STREAM}")
        with pytest.raises((nats.errors.TimeoutError, nats.errors.NoRespondersError)):
            await js.object_store(subjects.FILES_BUCKET)
        await client.wait_refused(f"$JS.API.STREAM.INFO.{FILES_STREAM}")
        # A KV get and an object's metadata get, asked for directly, are refused as well.
        for subject in (
            f"$JS.API.DIRECT.GET.{MODELS_STREAM}.$KV.{subjects.MODELS_BUCKET}.iris",
            f"$JS.API.STREAM.MSG.GET.{FILES_STREAM}",
        ):
            with pytest.raises((nats.errors.TimeoutError, nats.errors.NoRespondersError)):
                await client.nc.request(subject, b"{}", timeout=1)
            await client.wait_refused(subject)
        # No writes to the buckets, no events, no echo, no training.
        for subject in (
            f"$KV.{subjects.MODELS_BUCKET}.iris",
            f"$O.{subjects.FILES_BUCKET}.M.aXJpcy8x",
            subjects.model_events("iris"),
            subjects.echo(),
            subjects.train_submit(),
        ):
            await client.nc.publish(subject, b"x")
            await client.wait_refused(subject)
        # It may not pose as a modelhost, nor read anyone else's replies or the buckets' streams.
        await client.nc.subscribe(subjects.infer("iris"), queue=subjects.MODELHOST_QUEUE)
        await client.wait_refused(f'Subscription to "{subjects.infer("iris")}"')
        for subject in (
            "mlbuffet.infer.>",
            "_INBOX.>",
            "_INBOX.gateway.>",
            f"$KV.{subjects.MODELS_BUCKET}.>",
        ):
            await client.nc.subscribe(subject)
            await client.wait_refused(f'Subscription to "{subject}"')
        # Still a working connection: it predicts again.
        reply = await client.nc.request(subjects.infer("iris"), pack(iris_request()), timeout=5)
        assert unpack(reply.data, InferResponse.from_dict).model == "iris"
    finally:
        await client.nc.close()


async def test_a_gateway_cannot_pose_as_a_modelhost(mesh: SecuredMesh):
    client = await probe(mesh.nats.config("gateway"))
    try:
        for subject in (
            subjects.infer("iris"),
            subjects.infer_pinned_versions("iris"),
            subjects.echo(),
        ):
            await client.nc.subscribe(subject, queue=subjects.MODELHOST_QUEUE)
            await client.wait_refused(f'Subscription to "{subject}"')
        await client.nc.subscribe(subjects.train_submit(), queue=subjects.TRAINER_QUEUE)
        await client.wait_refused(f'Subscription to "{subjects.train_submit()}"')
        await client.nc.publish(subjects.heartbeat("modelhost", "fake"), b"x")
        await client.wait_refused(subjects.heartbeat("modelhost", "fake"))
    finally:
        await client.nc.close()


async def test_a_modelhost_reads_the_registry_but_cannot_change_it(mesh: SecuredMesh):
    client = await probe(mesh.nats.config("modelhost"))
    try:
        kv = await client.nc.jetstream(timeout=2).key_value(subjects.MODELS_BUCKET)
        assert (await kv.get("iris")).value  # reading is its job
        for subject in (
            f"$KV.{subjects.MODELS_BUCKET}.iris",
            f"$O.{subjects.FILES_BUCKET}.C.x",
            f"$JS.API.STREAM.PURGE.{FILES_STREAM}",
            f"$JS.API.STREAM.DELETE.{MODELS_STREAM}",
            f"$JS.API.STREAM.CREATE.{MODELS_STREAM}",
            subjects.infer("iris"),
            subjects.train_submit(),
        ):
            await client.nc.publish(subject, b"{}")
            await client.wait_refused(subject)
        with pytest.raises(nats.errors.TimeoutError):
            await kv.put("iris", b"{}")
        await client.nc.subscribe("_INBOX.gateway.>")
        await client.wait_refused('Subscription to "_INBOX.gateway.>"')
    finally:
        await client.nc.close()


async def test_connections_without_a_client_certificate_or_a_password_are_refused(
    start_secure: Any,
):
    secure = await start_secure()
    stranger = secure.pki.stranger
    refused_configs = {
        "no client certificate": secure.config("gateway", tls_cert_file=None, tls_key_file=None),
        "a certificate of another CA": secure.config(
            "gateway", tls_cert_file=str(stranger.cert), tls_key_file=str(stranger.key)
        ),
        "no CA: the server's certificate is not trusted": secure.config(
            "gateway", tls_ca_file=None
        ),
        "a wrong password": secure.config("gateway", password="guess"),
        "no user": secure.config("gateway", user=None, password=None),
        "another role's password": secure.config("gateway", password=secure.passwords["predict"]),
    }
    for why, config in refused_configs.items():
        with pytest.raises(NatsUnavailableError):
            nc = await connect(config, name="refused")
            await close_quietly(nc)
            pytest.fail(f"connected with {why}")
    nc = await connect(secure.config("gateway"), name="accepted")
    assert nc.is_connected
    await close_quietly(nc)


async def test_an_nkey_user_connects_with_its_seed_file(tmp_path: Path):
    seed = nkeys.encode_seed(os.urandom(32), nkeys.PREFIX_BYTE_USER)
    public = nkeys.from_seed(bytearray(seed)).public_key.decode()
    seed_file = tmp_path / "predict.nk"
    seed_file.write_bytes(seed + b"\n")
    seed_file.chmod(0o600)
    predict = next(r for r in ROLES if r.name == "predict")
    users = (
        "authorization {\n  users: [\n" + render_user(predict, Secret(nkey=public)) + "\n  ]\n}\n"
    )
    server = NatsServer(NatsServerConfig(data_dir=tmp_path / "nats", port=0, extra=users))
    await server.start()
    try:
        ok = NatsConfig(
            urls=(server.url,),
            nkey_seed_file=str(seed_file),
            inbox_prefix="_INBOX.predict",
            connect_wait_s=0,
        )
        nc = await connect(ok, name="nkey")
        sub = await nc.subscribe("_INBOX.predict.x")
        await nc.flush()
        await sub.unsubscribe()
        await close_quietly(nc)
        other = tmp_path / "other.nk"
        other.write_bytes(nkeys.encode_seed(os.urandom(32), nkeys.PREFIX_BYTE_USER))
        with pytest.raises(NatsUnavailableError):
            await connect(
                NatsConfig(urls=(server.url,), nkey_seed_file=str(other), connect_wait_s=0),
                name="x",
            )
    finally:
        await server.stop()


async def test_a_token_server_needs_the_token(tmp_path: Path):
    token = os.urandom(16).hex()
    server = NatsServer(
        NatsServerConfig(
            data_dir=tmp_path / "nats", port=0, extra=f'authorization {{ token: "{token}" }}\n'
        )
    )
    await server.start()
    try:
        url = (server.url,)
        nc = await connect(NatsConfig(urls=url, token=token, connect_wait_s=0), name="token")
        await close_quietly(nc)
        with pytest.raises(NatsUnavailableError):
            await connect(NatsConfig(urls=url, token="nope", connect_wait_s=0), name="token")
    finally:
        await server.stop()


def test_the_generated_config_is_the_shipped_one():
    assert DEPLOY_AUTH.read_text() == deploy_config(), (
        "run: python -m mlbuffet.natsd.users > deploy/nats/auth.conf"
    )
