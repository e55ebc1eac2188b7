"""The hot-path parse of a prediction body, alone: nanoseconds per iris request.

    python -m bench.parse_iris_body [--rounds 15] [--number 50000]

Times, in one process and no I/O: orjson.loads of the body (the floor any
JSON route pays), read_json (the strict reader every body goes through), and
read_json plus tensors_from_values (the whole parse of POST .../prediction
before NATS). Rounds are interleaved so the machine's load hits each alike;
the best round is printed.
"""

from __future__ import annotations

import argparse
import timeit
from collections.abc import Callable
from typing import Any

import orjson

from mlbuffet.codecs.json_input import read_json
from mlbuffet.codecs.values import tensors_from_values
from mlbuffet.protocol.records import Signature, TensorSpec

BODY = b'{"values": [2, 5, 1, 4]}'
"""The original README's iris request."""
IRIS = Signature(inputs=(TensorSpec("float_input", "FP32", (-1, 4), "tensor(float)"),), outputs=())


def cases() -> dict[str, Callable[[], Any]]:
    return {
        "orjson.loads": lambda: orjson.loads(BODY),
        "read_json": lambda: read_json(BODY, "the body"),
        "read_json + tensors_from_values": lambda: tensors_from_values(
            read_json(BODY, "the body")["values"], IRIS
        ),
    }


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=15)
    parser.add_argument("--number", type=int, default=50_000)
    args = parser.parse_args(argv)
    timed = cases()
    best = dict.fromkeys(timed, float("inf"))
    for _ in range(args.rounds):
        for name, call in timed.items():
            best[name] = min(best[name], timeit.timeit(call, number=args.number))
    for name in timed:
        print(f"{name:34s} {best[name] / args.number * 1e9:7.0f} ns")


if __name__ == "__main__":
    main()
