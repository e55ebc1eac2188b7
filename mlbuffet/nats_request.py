"""One NATS request/reply with a deadline, NATS failures as MLBuffet errors, model events.

The gateway and the Python client both call the mesh this way, so a program
that talks NATS directly sees the same error types (and statuses) as a REST
caller: no responders is 503, no answer in time is 504, a lost connection 503;
and a change made through either is announced with the same event.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable, Mapping

import nats.errors
from nats.aio.client import Client

from mlbuffet.protocol import subjects
from mlbuffet.protocol.errors import (
    DeadlineExceededError,
    MLBuffetError,
    ModelNotReadyError,
    PayloadTooLargeError,
    ServiceUnavailableError,
)
from mlbuffet.protocol.headers import Header
from mlbuffet.protocol.messages import ModelEvent, pack

log = logging.getLogger(__name__)

RETRY_FIRST_WAIT_S = 0.05
RETRY_MAX_WAIT_S = 0.5

CONNECTION_ERRORS: tuple[type[Exception], ...] = (
    nats.errors.ConnectionClosedError,
    nats.errors.ConnectionReconnectingError,
    nats.errors.ConnectionDrainingError,
    nats.errors.OutboundBufferLimitError,
    nats.errors.StaleConnectionError,
    nats.errors.NoServersError,
)


def deadline_header(deadline: float) -> dict[str, str]:
    """The Mlbuffet-Deadline header of a request due at `deadline` (Unix time, seconds)."""
    return {Header.DEADLINE.value: str(int(deadline * 1000))}


def lost_connection(who: str) -> ServiceUnavailableError:
    return ServiceUnavailableError(f"{who} has lost its NATS connection; retry")


def no_modelhost() -> ModelNotReadyError:
    return ModelNotReadyError(
        "no modelhost serves this model right now; start one, or check that one can load it"
    )


def check_payload(nc: Client, payload: bytes) -> None:
    """413 before sending what the server would refuse (and the request would hang on)."""
    if len(payload) > nc.max_payload:
        raise PayloadTooLargeError(
            f"the request is {len(payload)} bytes encoded, over the NATS limit of "
            f"{nc.max_payload}; send a smaller batch"
        )


async def request(
    nc: Client,
    subject: str,
    payload: bytes,
    deadline: float,
    *,
    no_responders_wait_s: float,
    who: str,
    headers: Mapping[str, str] | None = None,
    on_no_responders: Callable[[], Awaitable[None]] | None = None,
) -> bytes:
    """One request/reply before `deadline` (Unix time), with NATS errors mapped.

    No responders is retried until the deadline, at most `no_responders_wait_s`:
    right after an upload or a restart, modelhosts need a moment to take a model.
    `who` names the caller in the message of a lost connection ("the gateway").
    `on_no_responders` runs once, at the first no responders, to raise at once
    what waiting cannot fix (the client checks that the model exists: 404).
    """
    check_payload(nc, payload)
    give_up_waiting = time.monotonic() + no_responders_wait_s
    wait = RETRY_FIRST_WAIT_S
    while True:
        timeout = deadline - time.time()
        if timeout <= 0:
            raise DeadlineExceededError("no answer before the request's deadline")
        try:
            msg = await nc.request(
                subject,
                payload,
                timeout=timeout,
                headers={**deadline_header(deadline), **(headers or {})},
            )
            return msg.data
        except nats.errors.NoRespondersError:
            if on_no_responders is not None:
                await on_no_responders()
                on_no_responders = None
            if time.monotonic() + wait > give_up_waiting or deadline - time.time() < wait:
                raise no_modelhost() from None
        except nats.errors.TimeoutError:
            raise DeadlineExceededError(
                f"no answer from a modelhost within {timeout:.1f} s"
            ) from None
        except CONNECTION_ERRORS:
            raise lost_connection(who) from None
        await asyncio.sleep(wait)
        wait = min(wait * 2, RETRY_MAX_WAIT_S)


def mesh_error(exc: BaseException, who: str) -> MLBuffetError | None:
    """The MLBuffet error for a NATS failure outside a request (a registry read, a publish)."""
    if isinstance(exc, MLBuffetError):
        return exc
    if isinstance(exc, nats.errors.TimeoutError | asyncio.TimeoutError):
        return DeadlineExceededError("NATS did not answer in time")
    if isinstance(exc, CONNECTION_ERRORS):
        return lost_connection(who)
    if isinstance(exc, nats.errors.NoRespondersError):
        return ServiceUnavailableError("JetStream is not available on this NATS server")
    return None


async def publish_model_event(
    nc: Client, node: str, event: str, model: str, version: int | None
) -> None:
    """Tell the cluster what `node` changed; best effort: it never fails the change it reports."""
    message = ModelEvent(event=event, model=model, version=version, node=node, at=time.time())
    try:
        await nc.publish(subjects.model_events(model), pack(message))
    except Exception:
        log.warning("could not publish the %s event of %s", event, model, exc_info=True)
