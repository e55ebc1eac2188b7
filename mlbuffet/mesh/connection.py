"""Opening the NATS connection every role uses."""

from __future__ import annotations

import asyncio
import logging
import math
import ssl
from collections.abc import Awaitable

import nats
from nats.aio.client import Client

from mlbuffet.config import NatsConfig

log = logging.getLogger(__name__)

RECONNECT_WAIT_S = 0.5
DRAIN_TIMEOUT_S = 5
FIRST_CONNECT_GRACE_S = 5.0
"""Added to connect_wait_s: the longest a first connection attempt may take in all."""


class NatsUnavailableError(ConnectionError):
    """NATS could not be reached within the configured wait."""


def client_tls_context(
    ca_file: str | None, cert_file: str | None, key_file: str | None
) -> ssl.SSLContext | None:
    """A TLS client context trusting `ca_file` and showing a client certificate; None for neither."""
    if not (ca_file or cert_file):
        return None
    context = ssl.create_default_context(cafile=ca_file)
    if cert_file and key_file:
        context.load_cert_chain(cert_file, key_file)
    return context


async def connect(config: NatsConfig, name: str, **overrides: object) -> Client:
    """Connect to NATS, trying for `config.connect_wait_s` before giving up.

    Once connected the client reconnects forever: a role outlives a NATS restart.
    `overrides` go to nats.connect as they are (an nkeys_seed, an ssl context as
    `tls`, ...), for callers whose options NatsConfig does not spell.
    """
    connected = False
    options: dict[str, object] = {
        "servers": list(config.urls),
        "name": name,
        "allow_reconnect": True,
        # Bounded for the first connection only (nats-py retries it under the
        # same limit), then lifted below.
        "max_reconnect_attempts": max(1, math.ceil(config.connect_wait_s / RECONNECT_WAIT_S)),
        "reconnect_time_wait": RECONNECT_WAIT_S,
        "connect_timeout": 2,
        # Actors drain their own subscriptions first; this only bounds the rest.
        "drain_timeout": DRAIN_TIMEOUT_S,
    }
    if config.user:
        options["user"] = config.user
        options["password"] = config.password
    if config.token:
        options["token"] = config.token
    if config.creds_file:
        options["user_credentials"] = config.creds_file
    if config.nkey_seed_file:
        options["nkeys_seed"] = config.nkey_seed_file
    options["inbox_prefix"] = config.reply_prefix
    tls = client_tls_context(config.tls_ca_file, config.tls_cert_file, config.tls_key_file)
    if tls is not None:
        options["tls"] = tls
    options.update(overrides)

    async def error_cb(exc: Exception) -> None:
        if connected:
            log.warning("NATS: %s", exc or type(exc).__name__)
        else:
            log.debug("NATS not reachable yet: %s", exc or type(exc).__name__)

    async def disconnected_cb() -> None:
        # Also called by an orderly close, so not a warning; error_cb reports real faults.
        if connected:
            log.info("NATS: disconnected")

    async def reconnected_cb() -> None:
        log.info("NATS: reconnected")

    try:
        # Bounded: nats-py can wait forever on a TLS handshake that failed verification.
        nc = await asyncio.wait_for(
            nats.connect(
                **options,  # type: ignore[arg-type]
                error_cb=error_cb,
                disconnected_cb=disconnected_cb,
                reconnected_cb=reconnected_cb,
            ),
            config.connect_wait_s + FIRST_CONNECT_GRACE_S,
        )
    except (TimeoutError, OSError, nats.errors.Error) as exc:
        raise NatsUnavailableError(
            f"cannot reach NATS at {', '.join(config.urls)}: {exc or type(exc).__name__}"
        ) from None
    nc.options["max_reconnect_attempts"] = -1
    connected = True
    return nc


CONNECTION_CHECK_S = 0.1


async def while_connected(nc: Client, work: Awaitable[object], timeout_s: float) -> bool:
    """Await `work` for up to `timeout_s`, giving up as soon as `nc` has no server.

    A drain waits on the server (a flush per subscription); when NATS goes
    away at the moment a role stops (`mlbuffet up` killed takes nats-server
    with it), nothing can answer, and waiting out the whole drain timeout
    only delays the exit. True if `work` finished; otherwise it is cancelled.
    Its errors are raised.
    """
    task = asyncio.ensure_future(work)
    deadline = asyncio.get_running_loop().time() + timeout_s
    try:
        while not task.done():
            left_s = deadline - asyncio.get_running_loop().time()
            if left_s <= 0 or not nc.is_connected:
                return False
            await asyncio.wait({task}, timeout=min(CONNECTION_CHECK_S, left_s))
        task.result()
        return True
    finally:
        if not task.done():
            task.cancel()
            await asyncio.wait({task}, timeout=CONNECTION_CHECK_S)
        if task.done() and not task.cancelled():
            task.exception()  # retrieved: work given up on has nothing more to say


async def close_quietly(nc: Client) -> None:
    """Drain and close `nc` (flush what is published), within DRAIN_TIMEOUT_S; never raises.

    Without a server to drain to (NATS went away as we stop), close at once.
    """
    if nc.is_closed:
        return
    if nc.is_connected:
        try:
            if await while_connected(nc, nc.drain(), DRAIN_TIMEOUT_S + 1):
                return
        except Exception:
            log.debug("NATS drain failed", exc_info=True)
    if nc.is_closed:
        return
    try:
        await nc.close()
    except Exception:
        log.debug("NATS close failed", exc_info=True)


async def flush_subscriptions(nc: Client) -> None:
    """Return once the server has every subscription made on `nc` so far.

    nats-py (2.16) writes flush()'s PING straight to the socket, ahead of
    commands still queued for its flusher task, so the PONG of one flush can
    come back before a new SUB reached the server. The first flush lets the
    flusher write what was queued; the second PING follows it on the wire.
    """
    await nc.flush()
    await nc.flush()
