"""Checking an uploaded file with onnxruntime and reading its signature.

onnxruntime parses untrusted files in C++: a hostile file could crash the
process that loads it. So the gateway never loads one itself; ModelInspector
runs the check in a worker process and treats a dead worker as a bad file.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import hashlib
import logging
import math
import multiprocessing
import multiprocessing.forkserver
import os
import resource
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from mlbuffet.protocol.errors import UnprocessableError
from mlbuffet.protocol.records import DYNAMIC, Signature, TensorSpec
from mlbuffet.protocol.tensors import ONNX_TENSOR_TYPES
from mlbuffet.registry.model_file import ModelFile

OBJECT = "OBJECT"
HASH_CHUNK_BYTES = 1 << 20
WORKER_ATTEMPTS = 2
"""Tries of one file, each in a fresh worker if the previous one died."""
CHECK_MEMORY_BYTES = 8 << 30
"""Address space of the process that loads an untrusted file: a model that makes onnxruntime
allocate more fails to load (a 422) instead of pushing the machine into the OOM killer."""
CHECK_TIMEOUT_S = 300.0
"""Wall-clock limit of loading one file; the worker is killed after it."""
FIRST_TRY_BASE_S = 30.0
FIRST_TRY_BYTES_PER_S = 10 << 20
"""The first try of a file gets 30 s plus 1 s per 10 MiB (at most CHECK_TIMEOUT_S). A worker
stuck past that on a file of that size is more likely wedged than busy (once, in CI, one sat
on a 1 KB model for minutes): the file gets a second try, in a fresh worker, with the whole
CHECK_TIMEOUT_S, so a big model that is merely slow is never refused for it."""
MAX_DECLARED_ELEMENTS = 1 << 30
"""Largest fixed-size input or output a model may declare: 4 GiB of float32, past anything a
request or reply can carry. A bigger one is a hostile file (the modelhost's warm-up would
allocate it)."""

log = logging.getLogger(__name__)


def tensor_spec(node: Any) -> TensorSpec:
    """The TensorSpec of an onnxruntime NodeArg (an input or output)."""
    onnx_type: str = node.type
    shape = node.shape if isinstance(node.shape, list) else []
    return TensorSpec(
        name=node.name,
        datatype=ONNX_TENSOR_TYPES.get(onnx_type, OBJECT),
        shape=tuple(d if isinstance(d, int) and d >= 0 else DYNAMIC for d in shape),
        onnx_type=onnx_type,
    )


def signature_of(session: Any) -> Signature:
    return Signature(
        inputs=tuple(tensor_spec(n) for n in session.get_inputs()),
        outputs=tuple(tensor_spec(n) for n in session.get_outputs()),
    )


@dataclass(frozen=True, slots=True)
class _Checked:
    signature: Signature
    description: str
    library: str


def _check(path: str) -> _Checked:
    """Load `path` in onnxruntime; runs in the inspector's worker process."""
    import onnxruntime as ort

    _limit_memory(CHECK_MEMORY_BYTES)
    options = ort.SessionOptions()
    options.intra_op_num_threads = 1
    options.inter_op_num_threads = 1
    options.log_severity_level = 3
    try:
        session = ort.InferenceSession(path, options, providers=["CPUExecutionProvider"])
    except Exception as exc:
        # onnxruntime's message names the temporary path; the user knows the file by its name.
        detail = str(exc).replace(path, "the file").strip().splitlines()
        raise UnprocessableError(
            "the file is not an ONNX model onnxruntime can load: "
            + (detail[0] if detail else type(exc).__name__)
        ) from None
    meta = session.get_modelmeta()
    if not session.get_inputs():
        raise UnprocessableError("the model has no inputs")
    signature = signature_of(session)
    for spec in (*signature.inputs, *signature.outputs):
        if DYNAMIC not in spec.shape and math.prod(spec.shape) > MAX_DECLARED_ELEMENTS:
            raise UnprocessableError(
                f"the model declares tensor {spec.name!r} of shape {list(spec.shape)}: "
                f"more than {MAX_DECLARED_ELEMENTS} elements, which no request can carry"
            )
    return _Checked(
        signature=signature,
        description=meta.description or meta.graph_description or "",
        library=meta.producer_name or "",
    )


def _limit_memory(limit: int) -> None:
    """Lower this process's address-space limit to `limit` (never raise it)."""
    soft, hard = resource.getrlimit(resource.RLIMIT_AS)
    if soft == resource.RLIM_INFINITY or soft > limit:
        wanted = limit if hard == resource.RLIM_INFINITY else min(limit, hard)
        resource.setrlimit(resource.RLIMIT_AS, (wanted, hard))


def _stop_forkserver() -> None:
    """Make the next worker fork from a fresh forkserver.

    A worker that hangs before it loads anything may have been forked while the forkserver
    held a lock: every worker forked from that server would hang the same way (in CI both
    tries of a 1 KB model once outlasted the test). Workers already running are not touched;
    the next one starts a new server. `_stop` is CPython's own (its tests use it); where it
    is missing, nothing is done and the retry uses the old server, as before.
    """
    server = getattr(multiprocessing.forkserver, "_forkserver", None)
    stop = getattr(server, "_stop", None)
    if callable(stop):
        stop()


def sha256_of(path: Path) -> tuple[str, int]:
    digest = hashlib.sha256()
    size = 0
    with path.open("rb") as f:
        while chunk := f.read(HASH_CHUNK_BYTES):
            digest.update(chunk)
            size += len(chunk)
    return digest.hexdigest(), size


class ModelInspector:
    """Checks files with onnxruntime in a separate worker process, one at a time."""

    def __init__(self, timeout_s: float = CHECK_TIMEOUT_S) -> None:
        self.timeout_s = timeout_s
        self._pool: concurrent.futures.ProcessPoolExecutor | None = None
        self._lock = asyncio.Lock()

    def _executor(self) -> concurrent.futures.ProcessPoolExecutor:
        if self._pool is None:
            # forkserver: never fork a process that runs an event loop and threads.
            context = multiprocessing.get_context("forkserver")
            # Workers fork from a server that has onnxruntime imported already: fast to start.
            context.set_forkserver_preload(["onnxruntime", __name__])
            self._pool = concurrent.futures.ProcessPoolExecutor(max_workers=1, mp_context=context)
        return self._pool

    async def inspect(
        self, path: Path, *, sha256: str | None = None, size: int | None = None
    ) -> ModelFile:
        """Check `path` and describe it; UnprocessableError if onnxruntime cannot load it."""
        loop = asyncio.get_running_loop()
        if sha256 is None or size is None:
            sha256, size = await loop.run_in_executor(None, sha256_of, path)
        assert sha256 is not None and size is not None
        async with self._lock:
            # A worker that died (killed, out of memory) or hung while idle or on
            # this file is replaced either way; only a file that kills or outlasts
            # a fresh worker a second time is the file's fault.
            for attempt in range(WORKER_ATTEMPTS):
                last = attempt + 1 == WORKER_ATTEMPTS
                timeout_s = self.timeout_s if last else self.first_try_timeout(size)
                try:
                    checked = await asyncio.wait_for(
                        loop.run_in_executor(self._executor(), _check, os.fspath(path)),
                        timeout_s,
                    )
                    break
                except TimeoutError:
                    self._kill_workers()
                    if last:
                        raise UnprocessableError(
                            f"onnxruntime took over {timeout_s:g} s to load the file; "
                            "it is not a usable ONNX model"
                        ) from None
                    log.warning(
                        "the inspection worker took over %.0f s on %s (%d bytes); "
                        "trying again in a new one",
                        timeout_s,
                        path.name,
                        size,
                    )
                except BrokenProcessPool:
                    self.close()
                    if attempt + 1 == WORKER_ATTEMPTS:
                        raise UnprocessableError(
                            "onnxruntime crashed while loading the file; "
                            "it is not a usable ONNX model"
                        ) from None
                    log.warning(
                        "the inspection worker died; trying %s again in a new one", path.name
                    )
        return ModelFile(
            path=path,
            sha256=sha256,
            size=size,
            signature=checked.signature,
            description=checked.description,
            library=checked.library,
        )

    def first_try_timeout(self, size: int) -> float:
        return min(self.timeout_s, FIRST_TRY_BASE_S + size / FIRST_TRY_BYTES_PER_S)

    def _kill_workers(self) -> None:
        """Stop a load that is stuck: shutting a pool down never interrupts a running task."""
        if self._pool is not None:
            for process in list(getattr(self._pool, "_processes", {}).values()):
                process.kill()
        self.close()
        _stop_forkserver()

    def close(self) -> None:
        if self._pool is not None:
            self._pool.shutdown(wait=False, cancel_futures=True)
            self._pool = None
