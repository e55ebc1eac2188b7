"""A real nats-server with TLS (client certificates required) and the shipped per-role users.

The users are deploy/nats/auth.conf exactly as shipped, included by the test
server's config; their passwords are generated per test and reach nats-server
through the MLBUFFET_NATS_<ROLE>_PASSWORD variables the file refers to.
"""

from __future__ import annotations

import asyncio
import shutil
from dataclasses import dataclass, field
from pathlib import Path

import nats
from nats.aio.client import Client

from mlbuffet.config import NatsConfig
from mlbuffet.natsd.server import NatsServer, NatsServerConfig
from mlbuffet.natsd.users import ROLE_NAMES, new_password, password_variable
from tests.security.certs import Pki, make_pki

DEPLOY_AUTH = Path(__file__).resolve().parents[2] / "deploy" / "nats" / "auth.conf"


def tls_block(pki: Pki, *, verify: bool = True) -> str:
    return (
        "tls {\n"
        f'  cert_file: "{pki.server.cert}"\n'
        f'  key_file: "{pki.server.key}"\n'
        f'  ca_file: "{pki.ca}"\n'
        f"  verify: {'true' if verify else 'false'}\n"
        "  timeout: 2\n"
        "}\n"
    )


@dataclass
class SecureNats:
    server: NatsServer
    pki: Pki
    passwords: dict[str, str]

    @property
    def url(self) -> str:
        assert self.server.url is not None
        return self.server.url

    def config(self, role: str, **overrides: object) -> NatsConfig:
        """How `role` connects: its user and password, the CA, the client certificate."""
        settings: dict[str, object] = {
            "urls": (self.url,),
            "user": role,
            "password": self.passwords[role],
            "tls_ca_file": str(self.pki.ca),
            "tls_cert_file": str(self.pki.client.cert),
            "tls_key_file": str(self.pki.client.key),
            "connect_wait_s": 0.0,
        }
        settings.update(overrides)
        return NatsConfig(**settings)  # type: ignore[arg-type]


async def start_secure_nats(folder: Path, environ: dict[str, str]) -> SecureNats:
    """Start the server; `environ` (os.environ, patched by the test) gets the passwords."""
    pki = make_pki(folder / "pki")
    passwords = {role: new_password() for role in ROLE_NAMES}
    for role, password in passwords.items():
        environ[password_variable(role)] = password
    data = folder / "nats"
    data.mkdir(parents=True)
    shutil.copy(DEPLOY_AUTH, data / "auth.conf")
    extra = tls_block(pki) + 'include "auth.conf"\n'
    server = NatsServer(NatsServerConfig(data_dir=data, port=0, extra=extra))
    await server.start()
    return SecureNats(server, pki, passwords)


@dataclass
class Probe:
    """A raw nats-py client that records what the server refused (via the error callback)."""

    nc: Client
    errors: list[str] = field(default_factory=list)

    def refused(self) -> list[str]:
        return [e for e in self.errors if "permissions violation" in e.lower()]

    async def wait_refused(self, fragment: str, timeout_s: float = 5.0) -> str:
        """The permissions violation that names `fragment`, once the server reported it."""
        give_up = asyncio.get_running_loop().time() + timeout_s
        while True:
            for error in self.refused():
                if fragment.lower() in error.lower():  # nats-py lowercases the message
                    return error
            if asyncio.get_running_loop().time() > give_up:
                raise AssertionError(f"no violation about {fragment!r}; errors: {self.errors}")
            await asyncio.sleep(0.02)


async def probe(config: NatsConfig) -> Probe:
    """Connect like connection.connect does (TLS, credentials, the user's inbox prefix)."""
    from mlbuffet.mesh.connection import client_tls_context

    result = Probe(nc=Client())
    errors = result.errors

    async def error_cb(exc: Exception) -> None:
        errors.append(str(exc))

    options: dict[str, object] = {}
    if config.user:
        options["user"], options["password"] = config.user, config.password
    if config.nkey_seed_file:
        options["nkeys_seed"] = config.nkey_seed_file
    if config.token:
        options["token"] = config.token
    result.nc = await nats.connect(
        list(config.urls),
        tls=client_tls_context(config.tls_ca_file, config.tls_cert_file, config.tls_key_file),
        inbox_prefix=config.reply_prefix,
        error_cb=error_cb,
        allow_reconnect=False,
        connect_timeout=2,
        **options,  # type: ignore[arg-type]
    )
    return result
