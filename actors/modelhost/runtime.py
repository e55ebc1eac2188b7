"""One model version loaded in onnxruntime: input checks, the run itself, its timing and
output conversion. Every run of a model, batched or not, goes through `timed_run`.

Everything here is synchronous and CPU-bound; the service calls `load`,
`warm` and `compute` in executor threads (onnxruntime releases the GIL while it
computes), except a run cheap enough for the event loop (`cheap`, `inline=True`).
"""

from __future__ import annotations

import hashlib
import logging
import math
import queue
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt
import onnxruntime as ort
from mlbuffet.samples import sample_path
from onnxruntime.capi import onnxruntime_pybind11_state as ort_state

from mlbuffet.protocol import tensors
from mlbuffet.protocol.errors import InternalError, UnprocessableError
from mlbuffet.protocol.inference import ObjectOutput, Output, Tensor
from mlbuffet.protocol.records import (
    DYNAMIC,
    ModelSettings,
    Signature,
    TensorSpec,
    VersionRecord,
)
from mlbuffet.registry import signature_of

log = logging.getLogger(__name__)

Feeds = dict[str, npt.NDArray[Any]]
TimedRun = tuple[list[Any], float, float]
"""onnxruntime's values, when the run began (time.perf_counter()) and how long it took (s)."""

INLINE_MAX_S = 0.0002
"""Runs typically shorter than this happen on the event loop: handing them to a thread and
back costs more (tens of microseconds and two wake-ups) than the run itself."""
WARM_MAX_ELEMENTS = 1 << 24
"""Largest input the warm-up run invents (64 MiB of float32)."""
_TYPICAL_WEIGHT = 0.1
"""Weight of the latest run in the moving average of run times."""

_INPUT_FAULTS = (ort_state.InvalidArgument, ort_state.RuntimeException)
"""onnxruntime errors raised by a bad input (wrong dims, an index out of range), not by us."""


@dataclass(frozen=True, slots=True)
class Computed:
    """One request's share of a run."""

    outputs: tuple[Output, ...]
    started: float
    """time.perf_counter() when the run that computed it began."""
    compute_s: float
    batch_size: int
    """Rows in that run."""
    rows: int
    """Rows of this request (batch_size when it ran alone)."""


def rows_of(feeds: Feeds) -> int | None:
    """The common size of dimension 0 of every input, or None if they disagree."""
    sizes = {array.shape[0] if array.ndim else None for array in feeds.values()}
    if len(sizes) != 1:
        return None
    (rows,) = sizes
    return rows


@dataclass(frozen=True, slots=True)
class RuntimeSettings:
    intra_op_threads: int = 1
    """Threads one run may use. 1 by default: a host runs many requests at once, one per core."""
    sessions: int = 1
    """onnxruntime sessions of the model, so as many runs at once, each with its own threads."""

    @classmethod
    def for_model(
        cls, settings: ModelSettings, *, default_threads: int, cores: int
    ) -> RuntimeSettings:
        """The model's own choice where it made one, else the host's, so that
        sessions x intra-op threads fills the cores without oversubscribing them."""
        threads = settings.intra_op_threads or default_threads
        sessions = settings.sessions or max(1, cores // threads)
        return cls(intra_op_threads=threads, sessions=sessions)


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    text = text.split(" : ", 2)[-1] if text.startswith("[ONNXRuntimeError]") else text
    return text.splitlines()[0] if text else type(exc).__name__


class ModelRuntime:
    """An onnxruntime session for one version of one model."""

    def __init__(
        self,
        model: str,
        record: VersionRecord,
        sessions: Sequence[ort.InferenceSession],
        settings: ModelSettings | None = None,
    ) -> None:
        self.model = model
        self.version = record.version
        self.sha256 = record.sha256
        self.settings = settings or ModelSettings()
        """The registry's settings this runtime was built with (a change reloads it)."""
        self.sessions = tuple(sessions)
        self._free: queue.SimpleQueue[ort.InferenceSession] = queue.SimpleQueue()
        for session in self.sessions:
            self._free.put(session)
        self.session = self.sessions[0]
        self.signature: Signature = signature_of(self.session)
        self.inputs = {spec.name: spec for spec in self.signature.inputs}
        self.output_names = tuple(spec.name for spec in self.signature.outputs)
        self.batchable = _batchable(self.signature)
        """Dimension 0 is dynamic on every input and tensor output: requests can be stacked."""
        self.memory_bytes = 0
        """Resident memory that loading and warming it took (measured by the model set)."""
        self.memory_floor = 0
        """The least it could have cost: its file's size x its sessions."""
        self.item_s = 1.0
        """Moving average of run time per input element (seconds); pessimistic until measured.

        Per element, so a large request of a model whose small ones are cheap is
        not mistaken for a cheap one (and fixed costs make the guess err high)."""

    def cheap(self, feeds: Feeds) -> bool:
        """Whether this run is likely short enough for the event loop (see INLINE_MAX_S)."""
        return self.item_s * _items(feeds) < INLINE_MAX_S

    @classmethod
    def load(
        cls,
        model: str,
        record: VersionRecord,
        data: bytes,
        settings: RuntimeSettings,
        model_settings: ModelSettings | None = None,
    ) -> ModelRuntime:
        """Build a session from the file's bytes, after checking them against the registry's sha256."""
        digest = hashlib.sha256(data).hexdigest()
        if digest != record.sha256:
            raise InternalError(
                f"{model}:{record.version}: file sha256 {digest[:12]} does not match the registry's "
                f"{record.sha256[:12]}; refusing to load it"
            )
        options = ort.SessionOptions()
        options.intra_op_num_threads = settings.intra_op_threads
        options.inter_op_num_threads = 1
        options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
        options.log_severity_level = 3
        sessions = [
            ort.InferenceSession(data, options, providers=["CPUExecutionProvider"])
            for _ in range(settings.sessions)
        ]
        return cls(model, record, sessions, model_settings)

    def warm(self) -> None:
        """Run once on zeros so the first real request does not pay for lazy initialisation."""
        feeds: Feeds = {}
        for spec in self.signature.inputs:
            shape = tuple(1 if d == DYNAMIC else d for d in spec.shape)
            if math.prod(shape) > WARM_MAX_ELEMENTS:
                return  # a huge fixed input: warming would cost its size in memory
            if spec.datatype == tensors.BYTES:
                feeds[spec.name] = np.full(shape, "", dtype=object)
            elif spec.datatype in tensors.DTYPES:
                feeds[spec.name] = np.zeros(shape, dtype=tensors.DTYPES[spec.datatype])
            else:
                return  # sequence or map inputs: nothing sensible to invent
        try:
            for session in self.sessions:
                session.run(None, feeds)
            # Timed once more, now that the lazy initialisation is paid.
            started = time.perf_counter()
            self.sessions[0].run(None, feeds)
            self.item_s = (time.perf_counter() - started) / _items(feeds)
        except Exception as exc:
            log.info(
                "%s:%s: warm-up run on zeros failed (%s); serving anyway",
                self.model,
                self.version,
                _first_line(exc),
            )

    def prepare(self, inputs: Sequence[Tensor]) -> Feeds:
        """Decode the request's tensors and check them against the signature."""
        feeds: Feeds = {}
        for tensor in inputs:
            spec = self.inputs.get(tensor.name)
            if spec is None:
                raise UnprocessableError(
                    f"unknown input {tensor.name!r}; {self.model}:{self.version} takes "
                    + ", ".join(s.describe() for s in self.signature.inputs)
                )
            if tensor.name in feeds:
                raise UnprocessableError(f"input {tensor.name!r} is given twice")
            feeds[tensor.name] = self._check(spec, tensor)
        missing = [s for s in self.signature.inputs if s.name not in feeds]
        if missing:
            raise UnprocessableError("missing input " + ", ".join(s.describe() for s in missing))
        return feeds

    def _check(self, spec: TensorSpec, tensor: Tensor) -> npt.NDArray[Any]:
        if spec.datatype != tensor.datatype:
            raise UnprocessableError(
                f"input {spec.name!r} is {tensor.datatype}; the model expects {spec.datatype}"
            )
        if len(tensor.shape) != len(spec.shape) or any(
            want not in (DYNAMIC, got) for want, got in zip(spec.shape, tensor.shape, strict=True)
        ):
            raise UnprocessableError(
                f"input {spec.name!r} has shape {list(tensor.shape)}; the model expects "
                f"{list(spec.shape)} (-1: any size)"
            )
        array = tensors.decode_array(tensor.datatype, tensor.shape, tensor.data)
        if spec.datatype == tensors.BYTES:
            try:
                array = (
                    np.vectorize(lambda b: b.decode(), otypes=[object])(array)
                    if array.size
                    else array
                )
            except UnicodeDecodeError:
                raise UnprocessableError(f"input {spec.name!r}: strings must be UTF-8") from None
        return array

    def output_list(self, outputs: Sequence[str] | None) -> tuple[str, ...]:
        """The outputs to compute (all by default), checked before any run."""
        names = self.output_names if outputs is None else tuple(outputs)
        unknown = [n for n in names if n not in self.output_names]
        if unknown:
            raise UnprocessableError(
                f"unknown output {', '.join(map(repr, unknown))}; the model gives "
                + ", ".join(self.output_names)
            )
        return names

    def compute(self, feeds: Feeds, names: tuple[str, ...]) -> Computed:
        """One request run alone, in a compute thread: its outputs on the wire, and the timing."""
        return _computed(feeds, names, self.timed_run(feeds, names))

    def compute_inline(self, feeds: Feeds, names: tuple[str, ...]) -> Computed | None:
        """As `compute`, on the event loop: None at once if every session is busy."""
        run = self.try_timed_run(feeds, names)
        return None if run is None else _computed(feeds, names, run)

    def timed_run(self, feeds: Feeds, names: Sequence[str]) -> TimedRun:
        """Run on a free session, waiting for one if all are busy."""
        return self._run_on(self._free.get(), feeds, names)

    def try_timed_run(self, feeds: Feeds, names: Sequence[str]) -> TimedRun | None:
        """As `timed_run`, but None at once if every session is busy (never blocks the caller)."""
        try:
            session = self._free.get_nowait()
        except queue.Empty:
            return None
        return self._run_on(session, feeds, names)

    def _run_on(
        self, session: ort.InferenceSession, feeds: Feeds, names: Sequence[str]
    ) -> TimedRun:
        started = time.perf_counter()
        try:
            values: list[Any] = session.run(list(names), feeds)
        except _INPUT_FAULTS as exc:
            raise UnprocessableError(
                f"the model cannot run on this input: {_first_line(exc)}"
            ) from None
        finally:
            self._free.put(session)
        compute_s = time.perf_counter() - started
        self.item_s += _TYPICAL_WEIGHT * (compute_s / _items(feeds) - self.item_s)
        return values, started, compute_s


def _items(feeds: Feeds) -> int:
    return max(1, sum(array.size for array in feeds.values()))


def _batchable(signature: Signature) -> bool:
    try:
        ModelSettings(max_batch_size=2).check_batchable(signature)
    except UnprocessableError:
        return False
    return True


def _computed(feeds: Feeds, names: Sequence[str], run: TimedRun) -> Computed:
    """A request run alone: all its rows were the batch (1 for rank-0 inputs)."""
    values, started, compute_s = run
    outputs = tuple(to_output(name, value) for name, value in zip(names, values, strict=True))
    rows = rows_of(feeds) or 1
    return Computed(outputs, started, compute_s, rows, rows)


def to_output(name: str, value: Any) -> Output:
    """A wire output from what onnxruntime returned: a tensor, or plain lists and maps."""
    if isinstance(value, np.ndarray):
        datatype, shape, data = tensors.encode_array(value)
        return Tensor(name=name, datatype=datatype, shape=tuple(shape), data=data)
    return ObjectOutput(name=name, value=plain(value))


def plain(value: Any) -> Any:
    """numpy scalars and arrays inside sequences and maps, as plain Python values."""
    # A ZipMap's {label: probability} holds plain ints, strs and floats: tested by exact
    # type first, before the isinstance checks (an ABC among them) below.
    kind = type(value)
    if kind is float or kind is int or kind is str:
        return value
    if kind is dict:
        return {plain(k): plain(v) for k, v in value.items()}
    if isinstance(value, Mapping):
        return {plain(k): plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [plain(v) for v in value]
    if isinstance(value, np.ndarray):
        return value.tolist()
    if isinstance(value, np.generic):
        return value.item()
    return value


def start_onnxruntime() -> None:
    """Build, run and drop one small session (the iris sample), once per process.

    onnxruntime's first session also sets up the library itself (its
    environment, kernel registry and thread pools: some 20 MiB); paid here,
    before any model is measured, it is part of the host's baseline rather
    than the cost of whichever model happens to load first.
    """
    session = ort.InferenceSession(
        sample_path("iris").read_bytes(), providers=["CPUExecutionProvider"]
    )
    session.run(None, {session.get_inputs()[0].name: np.zeros((1, 4), np.float32)})
