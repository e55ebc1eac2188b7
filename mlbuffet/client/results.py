"""What the client sends and gets: arrays -> tensors, outputs -> arrays, registry changes.

Arrays travel as they are, in their own dtype: the client never guesses a
cast. Lists and scalars become arrays with numpy's own rules first.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt

from mlbuffet.protocol import tensors
from mlbuffet.protocol.errors import UnprocessableError
from mlbuffet.protocol.inference import InferResponse, ObjectOutput, Tensor
from mlbuffet.protocol.records import Signature

Inputs = Mapping[str, Any] | npt.ArrayLike
"""A map of input names to arrays, or one array for a model with a single input."""


def input_tensors(inputs: Mapping[str, Any]) -> tuple[Tensor, ...]:
    """Encode every named input with the one tensor codec (mlbuffet.protocol.tensors)."""
    encoded = []
    for name, value in inputs.items():
        if not isinstance(name, str):
            raise UnprocessableError(f"input names are strings, not {type(name).__name__}")
        try:
            array = value if isinstance(value, np.ndarray) else np.asarray(value)
        except (ValueError, TypeError, OverflowError) as exc:
            # Ragged lists, nesting deeper than numpy's 64 dimensions.
            raise UnprocessableError(f"input {name!r} is not an array: {exc}") from None
        if array.dtype.kind == "U":
            array = array.astype(object)
        datatype, shape, data = tensors.encode_array(array)
        encoded.append(Tensor(name=name, datatype=datatype, shape=tuple(shape), data=data))
    return tuple(encoded)


def only_input(signature: Signature, model: str) -> str:
    """The name of a model's single input; an array without a name fits no other model."""
    names = [spec.name for spec in signature.inputs]
    if len(names) != 1:
        raise UnprocessableError(
            f"model {model!r} takes {len(names)} inputs ({', '.join(names)}); "
            "give inputs as a map of input names to arrays"
        )
    return names[0]


class InferResult(Mapping[str, Any]):
    """The outputs of one inference by name, and who computed them.

    Tensor outputs are numpy arrays (read-only views on the reply: `.copy()`
    one to change it; BYTES outputs are object arrays of `bytes`); outputs
    that are not tensors (scikit-learn's ZipMap) are plain lists and maps.
    """

    __slots__ = ("_outputs", "id", "model", "node", "version")

    def __init__(self, response: InferResponse) -> None:
        self.model = response.model
        self.version = response.version
        self.node = response.node
        """The modelhost that answered."""
        self.id = response.id
        self._outputs: dict[str, Any] = {
            output.name: (
                output.value
                if isinstance(output, ObjectOutput)
                else tensors.decode_array(output.datatype, output.shape, output.data)
            )
            for output in response.outputs
        }

    def __getitem__(self, name: str) -> Any:
        return self._outputs[name]

    def __iter__(self) -> Iterator[str]:
        return iter(self._outputs)

    def __len__(self) -> int:
        return len(self._outputs)

    def __repr__(self) -> str:
        return (
            f"InferResult(model={self.model!r}, version={self.version}, node={self.node!r}, "
            f"outputs={list(self._outputs)})"
        )


@dataclass(frozen=True, slots=True)
class Uploaded:
    """What an upload made: the fields of the REST API's 201 answer."""

    model: str
    version: int
    default_version: int
    sha256: str
    size: int


@dataclass(frozen=True, slots=True)
class Deleted:
    """What a delete removed, and what is left (no versions: the model is gone)."""

    model: str
    deleted_versions: tuple[int, ...]
    default_version: int | None
    versions: tuple[int, ...]
