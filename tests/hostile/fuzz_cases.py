"""Hostile payloads for every NATS subject an actor serves.

Each case is (label, payload). The corpus is deterministic (a seeded
hypothesis run for the random bytes) so a failure names the exact bytes.
"""

from __future__ import annotations

import struct
from typing import Any, TypeVar

import msgpack
from hypothesis import HealthCheck, Phase, given, seed, settings
from hypothesis import strategies as st

Case = tuple[str, bytes]


def packed(value: Any) -> bytes:
    data: bytes = msgpack.packb(value, use_bin_type=True)
    return data


_T = TypeVar("_T")


def drawn(strategy: st.SearchStrategy[_T], count: int) -> list[_T]:
    """`count` examples of `strategy`, seeded: the same ones on every run."""
    found: list[_T] = []

    @seed(20261126)
    @settings(
        max_examples=count,
        database=None,
        phases=[Phase.generate],
        suppress_health_check=list(HealthCheck),
    )
    @given(strategy)
    def collect(example: _T) -> None:
        found.append(example)

    collect()
    return found


def random_bytes(count: int) -> list[bytes]:
    """`count` payloads drawn by hypothesis (seeded: the same ones on every run)."""
    return drawn(st.binary(min_size=0, max_size=600), count)


def prefixes(valid: bytes, samples: int = 40) -> list[Case]:
    """Cuts of a valid message: every length for a short one, a spread sample for a long one."""
    if len(valid) <= samples:
        cuts = range(len(valid))
    else:
        step = len(valid) / samples
        cuts = sorted({int(i * step) for i in range(samples)} | {len(valid) - 1})
    return [(f"prefix {n}/{len(valid)}", valid[:n]) for n in cuts]


def msgpack_bombs() -> list[Case]:
    """A few bytes that declare enormous or endlessly nested containers."""
    return [
        ("map of 2**32-1 entries", b"\xdf\xff\xff\xff\xff"),
        ("map of 2**32-1 entries, one given", b"\xdf\xff\xff\xff\xff\xa1a\x01"),
        ("array of 2**32-1 items", b"\xdd\xff\xff\xff\xff"),
        ("str of 2**32-1 bytes", b"\xdb\xff\xff\xff\xff" + b"x" * 16),
        ("bin of 2**32-1 bytes", b"\xc6\xff\xff\xff\xff" + b"x" * 16),
        ("ext of 2**32-1 bytes", b"\xc9\xff\xff\xff\xff\x01"),
        ("nested arrays 100000 deep", b"\x91" * 100_000 + b"\xc0"),
        ("nested maps 100000 deep", b"\x81\xa1k" * 100_000 + b"\xc0"),
        ("map with a list key", b"\x81\x91\x01\x01"),
        ("map with a map key", b"\x81\x81\x01\x01\x01"),
        ("timestamp ext", b"\xd6\xff" + struct.pack(">I", 0)),
        ("unknown ext", b"\xd4\x05\x00"),
        ("reserved byte 0xc1", b"\xc1"),
        ("two maps back to back", packed({}) + packed({})),
        ("map then garbage", packed({"type": "x"}) + b"\xff\xff"),
        ("invalid utf-8 str", b"\xa2\xff\xfe"),
        ("invalid utf-8 map key", b"\x81\xa2\xff\xfe\x01"),
    ]


def wrong_types() -> list[Case]:
    """Valid msgpack that is not the right message."""
    values: list[tuple[str, Any]] = [
        ("nil", None),
        ("true", True),
        ("int", 7),
        ("negative int", -(2**63)),
        ("uint64 max", 2**64 - 1),
        ("float nan", float("nan")),
        ("str", "mlbuffet"),
        ("bin", b"\x00" * 32),
        ("list", [1, 2, 3]),
        ("empty map", {}),
        ("map of ints", {1: 2, 3: 4}),
        ("unknown type", {"type": "mlbuffet.nothing.v9"}),
        ("type is a list", {"type": [1]}),
        ("error map in a request", {"error": {"code": 500, "message": "boom"}}),
        ("error map code 200", {"error": {"code": 200, "message": "fine"}}),
        ("error map code huge", {"error": {"code": 2**63, "message": "x"}}),
    ]
    return [(label, packed(value)) for label, value in values]


def nested(depth: int) -> Any:
    value: Any = 0
    for _ in range(depth):
        value = [value]
    return value


def infer_cases(model: str, good_input: dict[str, Any]) -> list[Case]:
    """Inference requests of the right shape but wrong content.

    A label starting "valid:" is odd but a correct request: an answer is right for it too.
    """

    def request(**changes: Any) -> dict[str, Any]:
        raw: dict[str, Any] = {
            "type": "mlbuffet.infer_request.v1",
            "model": model,
            "inputs": [dict(good_input)],
        }
        raw.update(changes)
        return raw

    def tensor(**changes: Any) -> dict[str, Any]:
        return request(inputs=[{**good_input, **changes}])

    huge = "x" * 900_000
    cases: list[tuple[str, Any]] = [
        ("inputs is a map", request(inputs={"x": 1})),
        ("inputs is nil", request(inputs=None)),
        ("no inputs field", {"type": "mlbuffet.infer_request.v1", "model": model}),
        ("empty inputs", request(inputs=[])),
        ("input is a list", request(inputs=[[1, 2]])),
        ("input is nil", request(inputs=[None])),
        ("model is an int", request(model=5)),
        ("version is a str", request(version="1")),
        ("version is a float", request(version=1.5)),
        ("outputs is a str", request(outputs="y")),
        ("outputs has an int", request(outputs=[1])),
        ("unknown output", request(outputs=["nope"])),
        ("100000 unknown outputs", request(outputs=[f"o{i}" for i in range(100_000)])),
        ("parameters is a list", request(parameters=[1])),
        ("id is a map", request(id={"a": 1})),
        ("shape [2**40, 2**40]", tensor(shape=[2**40, 2**40])),
        ("shape overflows int64", tensor(shape=[2**62, 2**62, 2**62])),
        ("shape [2**63-1, 0]", tensor(shape=[2**63 - 1, 0], data=b"")),
        ("shape [0, 2**63-1] no data", tensor(shape=[0, 2**63 - 1], data=b"")),
        ("shape uint64 max", tensor(shape=[2**64 - 1, 4])),
        ("negative dim", tensor(shape=[-1, 4])),
        ("int64 min dim", tensor(shape=[-(2**63), 4])),
        ("shape of floats", tensor(shape=[1.0, 4.0])),
        ("shape of bools", tensor(shape=[True, True])),
        ("shape is a str", tensor(shape="1,4")),
        ("shape is nil", tensor(shape=None)),
        ("rank 100", tensor(shape=[1] * 100)),
        ("rank 300000 of zeros", tensor(shape=[0] * 300_000, data=b"")),
        ("unknown datatype", tensor(datatype="FP128")),
        ("datatype is an int", tensor(datatype=1)),
        ("BYTES for a float input", tensor(datatype="BYTES")),
        ("FP64 for a float input", tensor(datatype="FP64")),
        ("data too short", tensor(data=b"\x00" * 3)),
        ("data too long", tensor(data=b"\x00" * 1000)),
        ("data is a str", tensor(data="abcd")),
        ("data is a list", tensor(data=[1.0, 2.0])),
        ("data is nil", tensor(data=None)),
        ("no data field", request(inputs=[{k: v for k, v in good_input.items() if k != "data"}])),
        ("unknown input name", tensor(name="nope")),
        ("input name is an int", tensor(name=3)),
        ("input given twice", request(inputs=[dict(good_input), dict(good_input)])),
        ("10000 inputs", request(inputs=[dict(good_input)] * 10_000)),
        ("huge input name", tensor(name=huge)),
        ("huge control-character name", tensor(name="\x00" * 300_000)),
        ("valid: huge model field (the subject names the model)", request(model=huge)),
        ("valid: huge id", request(id=huge)),
        ("valid: parameters 500 deep", request(parameters={"p": nested(500)})),
        ("type field wrong", request(type="mlbuffet.infer_request.v0")),
    ]
    return [(label, packed(value)) for label, value in cases]


def job_cases() -> list[Case]:
    """Training job submissions of the right shape but wrong content."""

    def job(**changes: Any) -> dict[str, Any]:
        raw: dict[str, Any] = {
            "type": "mlbuffet.train_job.v1",
            "job": "job-1",
            "model": "fuzzed",
            "script": "train.py",
            "requirements": "requirements.txt",
            "data": ["data.csv"],
        }
        raw.update(changes)
        return raw

    huge = "y" * 900_000
    cases: list[tuple[str, Any]] = [
        ("job id with ..", job(job="../etc")),
        ("job id with a dot", job(job="a.b")),
        ("job id with NUL", job(job="a\x00b")),
        ("job id is an int", job(job=1)),
        ("model name with /", job(model="a/b")),
        ("model name with a space", job(model="a b")),
        ("huge model name", job(model=huge)),
        ("huge control-character job id", job(job="\x01" * 300_000)),
        ("script is a path", job(script="/etc/passwd")),
        ("script with ..", job(script="../train.py")),
        ("script starts with a dot", job(script=".bashrc")),
        ("data is a str", job(data="data.csv")),
        ("data has an int", job(data=[1])),
        ("no dataset", job(data=[])),
        ("duplicate inputs", job(data=["train.py"])),
        ("100000 data files", job(data=[f"d{i}.csv" for i in range(100_000)])),
        ("timeout negative", job(timeout_s=-1)),
        ("timeout nan", job(timeout_s=float("nan"))),
        ("timeout inf", job(timeout_s=float("inf"))),
        ("timeout is a str", job(timeout_s="10")),
        ("make_default is an int", job(make_default=1)),
        ("output file with /", job(output_file="a/model.onnx")),
        ("inputs not uploaded", job()),
        ("type field wrong", job(type="mlbuffet.train_job.v0")),
    ]
    return [(label, packed(value)) for label, value in cases]
