"""What every role and every outside client shares about the wire; no I/O here."""

from mlbuffet.protocol import subjects
from mlbuffet.protocol.errors import (
    BadRequestError,
    ConflictError,
    DeadlineExceededError,
    ForbiddenError,
    InternalError,
    MLBuffetError,
    ModelNotFoundError,
    ModelNotReadyError,
    ModelTooLargeError,
    OverloadedError,
    PayloadTooLargeError,
    ServiceUnavailableError,
    TooManyRequestsError,
    UnauthorizedError,
    UnprocessableError,
    UnsupportedMediaTypeError,
    error_for_status,
)
from mlbuffet.protocol.events import ModelEvent, ModelEventKind, NodeEventKind
from mlbuffet.protocol.headers import Header
from mlbuffet.protocol.inference import (
    EchoReply,
    EchoRequest,
    InferRequest,
    InferResponse,
    ObjectOutput,
    Output,
    Tensor,
)
from mlbuffet.protocol.names import ModelRef, parse_model_name, parse_version
from mlbuffet.protocol.placement import PlaceReply
from mlbuffet.protocol.records import DYNAMIC, ModelRecord, Signature, TensorSpec, VersionRecord
from mlbuffet.protocol.wire import pack, pack_error, unpack

__all__ = [
    "DYNAMIC",
    "BadRequestError",
    "ConflictError",
    "DeadlineExceededError",
    "EchoReply",
    "EchoRequest",
    "ForbiddenError",
    "Header",
    "InferRequest",
    "InferResponse",
    "InternalError",
    "MLBuffetError",
    "ModelEvent",
    "ModelEventKind",
    "ModelNotFoundError",
    "ModelNotReadyError",
    "ModelRecord",
    "ModelRef",
    "ModelTooLargeError",
    "NodeEventKind",
    "ObjectOutput",
    "Output",
    "OverloadedError",
    "PayloadTooLargeError",
    "PlaceReply",
    "ServiceUnavailableError",
    "Signature",
    "Tensor",
    "TensorSpec",
    "TooManyRequestsError",
    "UnauthorizedError",
    "UnprocessableError",
    "UnsupportedMediaTypeError",
    "VersionRecord",
    "error_for_status",
    "pack",
    "pack_error",
    "parse_model_name",
    "parse_version",
    "subjects",
    "unpack",
]
