"""Is a model served? The registry's `serving` flag, then a probe of the modelhosts.

A probe is an empty request with `Mlbuffet-Probe: 1` that a modelhost serving
the model answers without computing anything (MeshLink.probe). Readiness checks
probe with a short timeout, concurrently, so /v2/health/ready stays fast with
many models.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterable

from gateway.service import MeshLink
from mlbuffet.protocol.errors import MLBuffetError, ModelNotReadyError
from mlbuffet.protocol.records import ModelRecord

PROBE_TIMEOUT_S = 2.0
PROBES_AT_ONCE = 32
RETRY_FIRST_WAIT_S = 0.05
RETRY_MAX_WAIT_S = 0.5


def unloaded_reason(name: str) -> str:
    return f"model {name!r} is unloaded; POST /v2/repository/models/{name}/load serves it again"


def require_serving(record: ModelRecord) -> ModelRecord:
    """ModelNotReadyError (503) at once for an unloaded model, rather than waiting for a host."""
    if not record.serving:
        raise ModelNotReadyError(unloaded_reason(record.name))
    return record


async def unready_reason(
    mesh: MeshLink, record: ModelRecord, version: int | None = None
) -> str | None:
    """None if a modelhost answers for the model (version None: its default), else why not."""
    if not record.serving:
        return unloaded_reason(record.name)
    try:
        await mesh.probe(record.name, version, timeout_s=PROBE_TIMEOUT_S)
    except MLBuffetError as exc:
        return exc.message
    return None


async def unready_reasons(mesh: MeshLink, records: Iterable[ModelRecord]) -> dict[str, str | None]:
    """unready_reason of each model's default, probing at most PROBES_AT_ONCE at a time."""
    limit = asyncio.Semaphore(PROBES_AT_ONCE)

    async def check(record: ModelRecord) -> str | None:
        async with limit:
            return await unready_reason(mesh, record)

    listed = list(records)
    reasons = await asyncio.gather(*(check(r) for r in listed))
    return {r.name: reason for r, reason in zip(listed, reasons, strict=True)}


async def unready_models(mesh: MeshLink) -> dict[str, str]:
    """Every model that should be served (not unloaded) but has no ready host, with the reason."""
    served = [r for r in mesh.view.records.values() if r.serving]
    return {name: why for name, why in (await unready_reasons(mesh, served)).items() if why}


async def wait_until_ready(mesh: MeshLink, name: str, timeout_s: float) -> None:
    """Probe until a modelhost serves `name`; ModelNotReadyError after `timeout_s`."""
    deadline = time.monotonic() + timeout_s
    wait = RETRY_FIRST_WAIT_S
    while True:
        record = await mesh.view.get(name)
        reason = await unready_reason(mesh, record)
        if reason is None:
            return
        if time.monotonic() + wait > deadline:
            raise ModelNotReadyError(
                f"no modelhost serves {name!r} after {timeout_s:.0f} s ({reason}); it stays "
                "marked to be served and will be as soon as a modelhost can load it"
            )
        await asyncio.sleep(wait)
        wait = min(wait * 2, RETRY_MAX_WAIT_S)


async def wait_until_unserved(mesh: MeshLink, name: str, timeout_s: float) -> bool:
    """Probe until no modelhost answers for `name` any more; False if some still do."""
    deadline = time.monotonic() + timeout_s
    wait = RETRY_FIRST_WAIT_S
    while True:
        try:
            await mesh.probe(name, timeout_s=PROBE_TIMEOUT_S)
        except ModelNotReadyError:
            return True
        except MLBuffetError:
            pass
        if time.monotonic() + wait > deadline:
            return False
        await asyncio.sleep(wait)
        wait = min(wait * 2, RETRY_MAX_WAIT_S)
