"""Opening JetStream buckets and streams, for the registry and the training store alike.

Each is opened if it exists and created if not, with the replicas the cluster
can hold; a JetStream that is still electing its leader is waited for
(bounded), since a role that starts with its cluster meets one.
"""

from __future__ import annotations

import asyncio
import dataclasses
import functools
import inspect
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any, TypeVar

import nats.errors
import nats.js.errors as js_errors
from nats.js import JetStreamContext
from nats.js.api import KeyValueConfig, ObjectStoreConfig, StorageType, StreamConfig
from nats.js.kv import KeyValue
from nats.js.object_store import ObjectStore

log = logging.getLogger(__name__)

AUTO_REPLICAS = 3
"""Copies of each bucket when the cluster has enough JetStream nodes: one node may die."""

JETSTREAM_WAIT_S = 60.0
"""How long opening a bucket waits for a cluster's JetStream to elect its leader.

A cluster whose nodes start together (a Kubernetes StatefulSet, Compose) on a
loaded machine took over 15 s to elect one; a role that gave up sooner exited
and was restarted, which works but reads as a crash."""

NO_JETSTREAM_WAIT_S = 5.0
"""How long "no responders" is waited out: a server without JetStream answers so at once, forever."""

_NOT_CLUSTERED = 10074
"""JetStream API error: replicas > 1 not supported in non-clustered mode."""
_INSUFFICIENT_RESOURCES = 10023
"""JetStream API error: fewer nodes than replicas asked for."""

_B = TypeVar("_B")


async def _when_jetstream_answers(operation: Callable[[], Awaitable[_B]]) -> _B:
    """Run a JetStream API call, waiting (bounded) while the cluster has no JetStream leader.

    A cluster that has just formed, or lost a node, times out or answers
    "unavailable" until it elects one; that is a wait, not an error.
    """
    loop = asyncio.get_running_loop()
    started = loop.time()
    while True:
        try:
            return await operation()
        except (js_errors.ServiceUnavailableError, nats.errors.TimeoutError):
            if loop.time() > started + JETSTREAM_WAIT_S:
                raise
        except nats.errors.NoRespondersError:
            if loop.time() > started + NO_JETSTREAM_WAIT_S:
                raise
        await asyncio.sleep(0.2)


async def _create_replicated(
    create: Callable[[int], Awaitable[_B]], replicas: int, *, fall_back: bool
) -> _B:
    """Create a bucket with `replicas` copies, or one if allowed and the cluster is too small."""
    while True:
        try:
            return await _when_jetstream_answers(functools.partial(create, replicas))
        except js_errors.APIError as exc:
            if (
                fall_back
                and replicas > 1
                and exc.err_code in (_NOT_CLUSTERED, _INSUFFICIENT_RESOURCES)
            ):
                log.info("%s; creating the bucket with 1 replica", exc.description)
                replicas = 1
                continue
            raise


async def open_key_value(
    js: JetStreamContext, config: KeyValueConfig, replicas: int | None
) -> tuple[KeyValue, bool]:
    """Open the KV bucket `config.bucket`, creating it if missing; the flag says it was created.

    `replicas=None` creates it with AUTO_REPLICAS copies where the cluster has
    that many JetStream nodes, one otherwise; an existing bucket keeps its own.
    """
    try:
        return await _when_jetstream_answers(lambda: js.key_value(config.bucket)), False
    except js_errors.BucketNotFoundError:
        pass
    kv = await _create_replicated(
        lambda n: js.create_key_value(dataclasses.replace(config, replicas=n)),
        AUTO_REPLICAS if replicas is None else replicas,
        fall_back=replicas is None,
    )
    return kv, True


async def open_object_store(
    js: JetStreamContext, bucket: str, config: ObjectStoreConfig, replicas: int | None
) -> tuple[ObjectStore, bool]:
    """Open the Object Store `bucket`, creating it if missing (replicas as in open_key_value)."""
    try:
        return await _when_jetstream_answers(lambda: js.object_store(bucket)), False
    except js_errors.BucketNotFoundError:
        pass
    store = await _create_replicated(
        lambda n: js.create_object_store(bucket, dataclasses.replace(config, replicas=n)),
        AUTO_REPLICAS if replicas is None else replicas,
        fall_back=replicas is None,
    )
    return store, True


async def open_stream(js: JetStreamContext, config: StreamConfig, replicas: int | None) -> bool:
    """Make sure the stream `config.name` exists (replicas as in open_key_value); True if created."""
    assert config.name is not None
    name = config.name
    try:
        await _when_jetstream_answers(lambda: js.stream_info(name))
        return False
    except js_errors.NotFoundError:
        pass
    await _create_replicated(
        lambda n: js.add_stream(dataclasses.replace(config, num_replicas=n)),
        AUTO_REPLICAS if replicas is None else replicas,
        fall_back=replicas is None,
    )
    return True


@dataclass(frozen=True, slots=True)
class StoreBuckets:
    """The two buckets of a store: its records in KV, its files in an Object Store."""

    records: str
    records_description: str
    history: int
    """Past revisions kept per record."""
    files: str
    files_description: str


async def open_store_buckets(
    js: JetStreamContext, buckets: StoreBuckets, replicas: int | None
) -> tuple[KeyValue, ObjectStore, bool]:
    """Open (or create) a store's KV and Object Store buckets; True if either was created."""
    kv, kv_created = await open_key_value(
        js,
        KeyValueConfig(
            bucket=buckets.records,
            description=buckets.records_description,
            history=buckets.history,
            storage=StorageType.FILE,
        ),
        replicas,
    )
    config = ObjectStoreConfig(description=buckets.files_description, storage=StorageType.FILE)
    store, files_created = await open_object_store(js, buckets.files, config, replicas)
    return kv, store, kv_created or files_created


async def bucket_keys(kv: KeyValue) -> list[str]:
    """Every key with a message in the bucket, deleted ones included (readers skip those).

    Not `kv.keys()`: nats-py's watcher can mark its initial replay done before the
    messages already on their way to it were counted (nats-io/nats.py#842), and
    keys() then lists nothing for a full bucket. That happened under load, both
    right after writes and after a cluster restart. The stream's leader lists its
    subjects in one reply instead (up to the server's 100,000 subject details).
    """
    prefix: str = kv._pre  # "$KV.<bucket>."; nats-py keeps the names it was opened with private
    info = await kv._js.stream_info(kv._stream, subjects_filter=f"{prefix}>")
    return [subject[len(prefix) :] for subject in info.state.subjects or {}]


async def watch_from_start(
    kv: KeyValue, apply: Callable[[KeyValue.Entry], Awaitable[None] | None], timeout_s: float = 30.0
) -> Any:
    """Watch every key of `kv`; returns once `apply` has seen all the bucket held when called.

    The watcher's own end-of-replay marker (None) can come before entries already
    on their way (nats-io/nats.py#842), so the replay ends at the stream's last
    sequence as read before watching: a KV stream's last message is always the
    newest of its key, so the replay reaches it. Markers are skipped here; the
    returned watcher goes on with later changes (and may still yield None).
    """
    target = (await kv.status()).stream_info.state.last_seq
    watcher = await kv.watchall()
    seen = 0
    while seen < target:
        entry = await watcher.updates(timeout=timeout_s)  # type: ignore[no-untyped-call]
        if entry is None:
            continue
        seen = max(seen, entry.revision or 0)
        result = apply(entry)
        if inspect.isawaitable(result):
            await result
    return watcher
