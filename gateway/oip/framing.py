"""The binary tensor data extension's framing: a JSON header, then raw tensor bytes.

A request or response with binary tensors is `<JSON><bytes of tensor 1><bytes
of tensor 2>...`, the JSON's length in the `Inference-Header-Content-Length`
header, each binary tensor's size in its `parameters.binary_data_size`.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from mlbuffet.codecs.json_input import read_json
from mlbuffet.protocol.errors import BadRequestError

HEADER_LENGTH = "Inference-Header-Content-Length"
BINARY_CONTENT_TYPE = "application/octet-stream"
JSON_CONTENT_TYPE = "application/json"


@dataclass(frozen=True, slots=True)
class Framed:
    """A request body split in its JSON document and the binary data that follows it."""

    document: Any
    binary: memoryview


def split_body(body: bytes, header_length: str | None) -> Framed:
    """Parse the JSON part of a body; the rest (if the header says there is one) is binary."""
    if header_length is None:
        json_part, binary = memoryview(body), memoryview(b"")
    else:
        # Decimal digits only: int() would also take "+5", " 5", "1_0" and other scripts' digits.
        length = int(header_length) if header_length.isascii() and header_length.isdigit() else -1
        if not 0 <= length <= len(body):
            raise BadRequestError(
                f"{HEADER_LENGTH}: {header_length!r} is not a length within the "
                f"{len(body)}-byte body"
            )
        view = memoryview(body)
        json_part, binary = view[:length], view[length:]
    if not json_part.nbytes:
        raise BadRequestError("the request has no JSON inference header")
    return Framed(read_json(json_part, "the inference request"), binary)


class BinaryReader:
    """Hands out the binary section in order, one input's `binary_data_size` at a time."""

    def __init__(self, binary: memoryview) -> None:
        self._binary = binary
        self._offset = 0

    def take(self, size: int, name: str) -> bytes:
        end = self._offset + size
        if end > self._binary.nbytes:
            raise BadRequestError(
                f"input {name!r}: binary_data_size {size} runs past the end of the body "
                f"({self._binary.nbytes - self._offset} bytes left)"
            )
        data = bytes(self._binary[self._offset : end])
        self._offset = end
        return data

    def check_consumed(self) -> None:
        left = self._binary.nbytes - self._offset
        if left:
            raise BadRequestError(
                f"{left} bytes of binary data follow the inputs' binary_data_size total"
            )


def join_body(document: bytes, chunks: Sequence[bytes]) -> bytes:
    return b"".join((document, *chunks))
