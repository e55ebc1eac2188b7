"""The inference messages: a request and its response on mlbuffet.infer.<model>[.<version>],
and the echo test on mlbuffet.test.echo. docs/protocol.md documents each schema."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from mlbuffet.protocol.errors import BadRequestError
from mlbuffet.protocol.fields import check_type, optional_field, required_field


@dataclass(frozen=True, slots=True)
class Tensor:
    """A tensor on the wire: raw little-endian bytes in C order (see tensors.py)."""

    name: str
    datatype: str
    shape: tuple[int, ...]
    data: bytes

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "datatype": self.datatype,
            "shape": list(self.shape),
            "data": self.data,
        }

    @classmethod
    def from_dict(cls, raw: Any) -> Tensor:
        if not isinstance(raw, Mapping):
            raise BadRequestError("a tensor must be a map")
        shape = required_field(raw, "shape", list, "tensor")
        if not all(isinstance(d, int) and not isinstance(d, bool) for d in shape):
            raise BadRequestError("tensor shape must be a list of integers")
        return cls(
            name=required_field(raw, "name", str, "tensor"),
            datatype=required_field(raw, "datatype", str, "tensor"),
            shape=tuple(shape),
            data=required_field(raw, "data", (bytes, bytearray), "tensor"),
        )


OBJECT_DATATYPE = "OBJECT"


@dataclass(frozen=True, slots=True)
class ObjectOutput:
    """A model output that is not a tensor (a sequence of maps, e.g. scikit-learn's ZipMap).

    `value` holds plain lists and maps; on the wire it is
    `{"name", "datatype": "OBJECT", "value"}`.
    """

    name: str
    value: Any

    def to_dict(self) -> dict[str, Any]:
        return {"name": self.name, "datatype": OBJECT_DATATYPE, "value": self.value}


Output = Tensor | ObjectOutput


def _output_from_dict(raw: Any) -> Output:
    if isinstance(raw, Mapping) and raw.get("datatype") == OBJECT_DATATYPE:
        return ObjectOutput(name=required_field(raw, "name", str, "output"), value=raw.get("value"))
    return Tensor.from_dict(raw)


@dataclass(frozen=True, slots=True)
class InferRequest:
    """Subject mlbuffet.infer.<model>[.<version>]; the reply is an InferResponse or an error."""

    TYPE = "mlbuffet.infer_request.v1"

    model: str
    inputs: tuple[Tensor, ...]
    version: int | None = None
    outputs: tuple[str, ...] | None = None
    """Names of the outputs wanted; None means all of them."""
    id: str | None = None
    parameters: Mapping[str, Any] = field(default_factory=dict)
    deadline_ms: int | None = None
    """Absolute deadline, Unix time in milliseconds; a host drops the request once it has
    passed. In the payload rather than a NATS header: nats-py builds and parses headers
    in Python, and echoes a request's headers on its reply (docs/protocol.md)."""

    def to_dict(self) -> dict[str, Any]:
        return {
            "type": self.TYPE,
            "model": self.model,
            "version": self.version,
            "inputs": [t.to_dict() for t in self.inputs],
            "outputs": None if self.outputs is None else list(self.outputs),
            "id": self.id,
            "parameters": dict(self.parameters),
            "deadline_ms": self.deadline_ms,
        }

    @classmethod
    def from_dict(cls, raw: Mapping[str, Any]) -> InferRequest:
        check_type(raw, cls.TYPE)
        what = "inference request"
        inputs = required_field(raw, "inputs", list, what)
        outputs = optional_field(raw, "outputs", list, what)
        if outputs is not None and not all(isinstance(o, str) for o in outputs):
            raise BadRequestError("inference request: 'outputs' must be a list of names")
        version = optional_field(raw, "version", int, what)
        return cls(
            model=required_field(raw, "model", str, what),
            inputs=tuple(Tensor.from_dict(t) for t in inputs),
            version=version,
            outputs=None if outputs is None else tuple(outputs),
            id=optional_field(raw, "id", str, what),
            parameters=optional_field(raw, "parameters", dict, what) or {},
            deadline_ms=optional_field(raw, "deadline_ms", int, what),
        )


@dataclass(frozen=True, slots=True)
class InferResponse:
    TYPE = "mlbuffet.infer_response.v1"

    model: str
    version: int
    node: str
    """The modelhost that computed the answer."""
    outputs: tuple[Output, ...]
    id: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return {
            "type": self.TYPE,
            "model": self.model,
            "version": self.version,
            "node": self.node,
            "outputs": [o.to_dict() for o in self.outputs],
            "id": self.id,
        }

    @classmethod
    def from_dict(cls, raw: Mapping[str, Any]) -> InferResponse:
        check_type(raw, cls.TYPE)
        what = "inference response"
        return cls(
            model=required_field(raw, "model", str, what),
            version=required_field(raw, "version", int, what),
            node=required_field(raw, "node", str, what),
            outputs=tuple(_output_from_dict(o) for o in required_field(raw, "outputs", list, what)),
            id=optional_field(raw, "id", str, what),
        )


@dataclass(frozen=True, slots=True)
class EchoRequest:
    """Subject mlbuffet.test.echo: the seed's load-balancing test."""

    TYPE = "mlbuffet.echo_request.v1"

    data: Any

    def to_dict(self) -> dict[str, Any]:
        return {"type": self.TYPE, "data": self.data}

    @classmethod
    def from_dict(cls, raw: Mapping[str, Any]) -> EchoRequest:
        check_type(raw, cls.TYPE)
        return cls(data=raw.get("data"))


@dataclass(frozen=True, slots=True)
class EchoReply:
    TYPE = "mlbuffet.echo_reply.v1"

    data: Any
    node: str

    def to_dict(self) -> dict[str, Any]:
        return {"type": self.TYPE, "data": self.data, "node": self.node}

    @classmethod
    def from_dict(cls, raw: Mapping[str, Any]) -> EchoReply:
        check_type(raw, cls.TYPE)
        return cls(data=raw.get("data"), node=required_field(raw, "node", str, "echo reply"))
