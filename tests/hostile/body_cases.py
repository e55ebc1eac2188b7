"""Malformed request bodies for every gateway route that reads one.

A JSON route is a template body with `@` where a case's value goes, and the
value that makes it a good request. Each case says what the route must
answer: 400 for a body that is not strict JSON (docs/rest-api.md "Bodies
that are not valid input"), the route's own 4xx for JSON that parses but
does not fit, and 200 where the route takes any value.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import quote

from hypothesis import strategies as st

from mlbuffet.protocol import tensors

PLACE = b"@"
BOUNDARY = "body-cases-boundary-91c2"
FORM_TYPE = f"multipart/form-data; boundary={BOUNDARY}"


@dataclass(frozen=True)
class JsonRoute:
    """A route that reads JSON; `misfit` is its status for JSON that does not fit."""

    label: str
    method: str
    path: str
    template: bytes
    good: bytes
    misfit: int
    takes_any: frozenset[str] = frozenset()
    """Labels of parsed cases this route serves (200): its value may be anything."""
    binary_tail: bytes | None = None
    """For the /v2 binary extension: raw bytes after the JSON, its length in a header."""

    def request(self, value: bytes) -> tuple[bytes, dict[str, str]]:
        document = self.template.replace(PLACE, value)
        headers = {"Content-Type": "application/json"}
        if self.binary_tail is None:
            return document, headers
        headers = {
            "Content-Type": "application/octet-stream",
            "Inference-Header-Content-Length": str(len(document)),
        }
        return document + self.binary_tail, headers


@dataclass(frozen=True)
class ValueCase:
    """A value put in a route's template; `parses` says whether the document is strict JSON."""

    label: str
    value: bytes
    parses: bool
    words: tuple[str, ...] = ()
    """Words the refusal must contain when the value does not parse."""


def nested(depth: int, leaf: bytes = b"1") -> bytes:
    return b"[" * depth + leaf + b"]" * depth


IRIS_ROW = b"[5.1, 3.5, 1.4, 0.2]"
OIP_IRIS = b'{"inputs": [{"name": "float_input", "datatype": "FP32", "shape": [1, 4], "data": @}]}'
OIP_IRIS_BINARY = (
    b'{"inputs": [{"name": "float_input", "datatype": "FP32", "shape": [1, 4], '
    b'"parameters": {"binary_data_size": 16}}], "id": @}'
)
FOUR_FLOATS = b"\x00\x00\x80?" * 4


def json_routes() -> list[JsonRoute]:
    """Every JSON-reading route of the gateway, on the model `iris` (the seed's)."""
    prediction = {"template": b'{"values": @}', "good": IRIS_ROW, "misfit": 422}
    every_parsed = frozenset(c.label for c in value_cases() if c.parses)
    return [
        JsonRoute("POST prediction", "POST", "/api/v1/models/iris/prediction", **prediction),
        JsonRoute("GET prediction", "GET", "/api/v1/models/iris/prediction", **prediction),
        JsonRoute(
            "description", "POST", "/api/v1/models/iris", b'{"model_description": @}',
            b'"Iris species"', 422, takes_any=frozenset({"string"}),
        ),
        JsonRoute("default", "POST", "/api/v1/models/iris/default", b'{"default": @}', b"1", 422),
        JsonRoute(
            "settings", "PUT", "/api/v1/models/iris/settings", b'{"max_queue_delay_us": @}',
            b"0", 422, takes_any=frozenset({"null"}),
        ),
        JsonRoute(
            "sendtomodelhost", "POST", "/api/test/sendtomodelhost", b'{"data": [@]}', b"1", 422,
            takes_any=every_parsed - {"nested 1000 deep"},
        ),
        JsonRoute("v2 infer", "POST", "/v2/models/iris/infer", OIP_IRIS, IRIS_ROW, 400),
        JsonRoute(
            "v2 infer version", "POST", "/v2/models/iris/versions/1/infer", OIP_IRIS, IRIS_ROW, 400
        ),
        JsonRoute(
            "v2 infer binary", "POST", "/v2/models/iris/infer", OIP_IRIS_BINARY, b'"id-1"', 400,
            takes_any=frozenset({"null", "string"}), binary_tail=FOUR_FLOATS,
        ),
        JsonRoute("v2 index", "POST", "/v2/repository/index", b'{"ready": @}', b"true", 400),
        JsonRoute(
            "v2 load", "POST", "/v2/repository/models/iris/load", b'{"parameters": @}', b"{}", 400,
            takes_any=every_parsed,
        ),
    ]  # fmt: skip


NOT_A_NUMBER = ("NaN", "null")
TOO_LARGE = ("beyond the range",)


def value_cases() -> list[ValueCase]:
    return [
        ValueCase("NaN", b"NaN", False, NOT_A_NUMBER),
        ValueCase("Infinity", b"Infinity", False, NOT_A_NUMBER),
        ValueCase("-Infinity", b"-Infinity", False, NOT_A_NUMBER),
        ValueCase("NaN in a row", b"[NaN, 3.5, 1.4, 0.2]", False, NOT_A_NUMBER),
        ValueCase("-Infinity in a row", b"[5.1, -Infinity, 1.4, 0.2]", False, NOT_A_NUMBER),
        ValueCase("1e400", b"1e400", False, TOO_LARGE),
        ValueCase("-1e400 in a row", b"[-1e400, 3.5, 1.4, 0.2]", False, TOO_LARGE),
        ValueCase("400-digit integer", b"1" + b"0" * 400, False, TOO_LARGE),
        ValueCase("nested 1025 deep", nested(1025), False, ("nested more than 1024",)),
        ValueCase("nested 30000 deep", nested(30_000), False, ("nested more than 1024",)),
        ValueCase("lone surrogate", b'"\\ud800"', False, ("surrogate",)),
        ValueCase("invalid UTF-8", b'"\xff\xfe"', False, ("UTF-8",)),
        ValueCase("single-quoted string", b"'x'", False, ("not valid JSON",)),
        ValueCase("hex number", b"0x10", False, ("not valid JSON",)),
        ValueCase("nested 1000 deep", nested(1000), True),
        ValueCase("nested 60 deep", nested(60), True),
        ValueCase("FP32 overflow", b"[3.5e38, 3.5, 1.4, 0.2]", True),
        ValueCase("integer beyond 64 bits", b"[18446744073709551616, 1, 2]", True),
        ValueCase("null", b"null", True),
        ValueCase("object", b'{"a": {"b": []}}', True),
        ValueCase("string", b'"5.1"', True),
        ValueCase("ragged rows", b"[[1, 2], [3]]", True),
    ]


WHOLE_BODIES: list[tuple[str, bytes, tuple[str, ...]]] = [
    ("truncated", b'{"values": [1, 2', ("not valid JSON",)),
    ("two documents", b"{} {}", ("not valid JSON",)),
    ("trailing comma", b'{"values": [1],}', ("not valid JSON",)),
    ("comment", b'{"values": [1] /* x */}', ("not valid JSON",)),
    ("byte order mark", b'\xef\xbb\xbf{"values": [1]}', ("not valid JSON",)),
    ("UTF-16", '{"values": [1]}'.encode("utf-16"), ("not valid JSON",)),
    ("NUL bytes", b"\x00" * 32, ("not valid JSON",)),
    ("Python literal", b"{'values': [1, 2]}", ("not valid JSON",)),
]
"""Whole bodies that are not JSON at all: 400 on every JSON route."""


@dataclass(frozen=True)
class FormRoute:
    """A route that reads a multipart form; `fields` make a good form with `file_field`."""

    label: str
    method: str
    path: str
    file_field: str
    files: dict[str, tuple[str, bytes]] = field(default_factory=dict)


def form_part(name: str, value: bytes, filename: str | None = None) -> bytes:
    disposition = f'form-data; name="{name}"'
    if filename is not None:
        disposition += f"; filename*=UTF-8''{quote(filename, safe='')}"
    return (
        (
            f"--{BOUNDARY}\r\nContent-Disposition: {disposition}\r\n"
            "Content-Type: application/octet-stream\r\n\r\n"
        ).encode()
        + value
        + b"\r\n"
    )


def form(*parts: bytes) -> bytes:
    return b"".join(parts) + f"--{BOUNDARY}--\r\n".encode()


MALFORMED_FORMS: list[tuple[str, bytes, str]] = [
    ("no boundary in the content type", b"--x\r\n\r\n--x--\r\n", "multipart/form-data"),
    ("garbage", b"\x00\x01garbage" * 10, FORM_TYPE),
    ("empty", b"", FORM_TYPE),
    ("no file part", form(form_part("model_description", b"x")), FORM_TYPE),
    ("never closed", form_part("path", b"abc", "m.onnx"), FORM_TYPE),
    ("cut inside the part headers", f"--{BOUNDARY}\r\nContent-Disposition: form-da".encode(),
     FORM_TYPE),
    ("header line without a colon", f"--{BOUNDARY}\r\nno colon here\r\n\r\nx\r\n--{BOUNDARY}--\r\n"
     .encode(), FORM_TYPE),
    ("control character in a part name",
     f'--{BOUNDARY}\r\nContent-Disposition: form-data; name="a\x01b"\r\n\r\nx\r\n--{BOUNDARY}--\r\n'
     .encode(), FORM_TYPE),
    ("nested multipart", (
        f'--{BOUNDARY}\r\nContent-Type: multipart/mixed; boundary=inner\r\n\r\n'
        f"--inner\r\n\r\nx\r\n--inner--\r\n\r\n--{BOUNDARY}--\r\n").encode(), FORM_TYPE),
    ("JSON sent as a form", b'{"values": [1, 2, 3, 4]}', FORM_TYPE),
]  # fmt: skip
"""Forms that do not parse (400), and one that parses without the route's file (422)."""


# Hypothesis strategies: the property tests draw from them, and the gateway test sends a
# seeded sample of them (fuzz_cases.drawn: the same documents on every run, so a failure names its input).

numbers = (
    st.integers(min_value=-(2**70), max_value=2**70)
    | st.floats(allow_nan=True, allow_infinity=True)
    | st.sampled_from([1e308, -1e308, 3.5e38, 65520.0, 2.0**53 + 1, -0.0, 5e-324])
    | st.sampled_from([math.nan, math.inf, -math.inf])
)
scalars = st.none() | st.booleans() | numbers | st.text(max_size=8)
json_values = st.recursive(
    scalars,
    lambda inner: (
        st.lists(inner, max_size=5) | st.dictionaries(st.text(max_size=4), inner, max_size=3)
    ),
    max_leaves=24,
)
"""Python values json.dumps can write; NaN, infinities and huge integers included."""


@st.composite
def oip_inputs(draw: st.DrawFn) -> dict[str, Any]:
    """Mostly well-formed OIP inputs (shape fits data), with hostile elements and fields."""
    elements = st.floats() | numbers | st.none() if draw(st.integers(0, 2)) else json_values
    data = draw(st.lists(elements, max_size=6))
    raw: dict[str, Any] = {
        "name": draw(st.just("x") | st.text(max_size=3)),
        "datatype": draw(st.sampled_from(["FP16", "FP32", "FP64"]) | st.sampled_from(DATATYPES)),
        "shape": draw(
            st.just([len(data)]) | st.lists(st.integers(-1, 5), max_size=3) | json_values
        ),
        "data": data,
    }
    if draw(st.integers(0, 4)) == 0:
        raw["parameters"] = draw(st.dictionaries(st.just("binary_data_size"), json_values))
    return raw


DATATYPES = [*tensors.DATATYPES, "FP128", ""]


@st.composite
def oip_documents(draw: st.DrawFn) -> dict[str, Any]:
    if draw(st.integers(0, 9)) == 0:
        return {"inputs": draw(json_values)}
    document: dict[str, Any] = {"inputs": draw(st.lists(oip_inputs(), min_size=1, max_size=2))}
    for key in ("id", "outputs", "parameters"):
        if draw(st.integers(0, 5)) == 0:
            document[key] = draw(st.text(max_size=4) if key == "id" else json_values)
    return document


def leaves(value: Any) -> list[Any]:
    stack, found = [value], []
    while stack:
        item = stack.pop()
        if isinstance(item, list):
            stack.extend(item)
        elif isinstance(item, dict):
            stack.extend(item.values())
        else:
            found.append(item)
    return found


def not_finite(value: Any) -> bool:
    return any(isinstance(v, float) and not math.isfinite(v) for v in leaves(value))


def too_large(value: Any) -> bool:
    return any(isinstance(v, int) and abs(v) > 1.7976931348623157e308 for v in leaves(value))


iris_rows = st.lists(st.lists(numbers | st.none(), min_size=4, max_size=4), min_size=1, max_size=3)
"""Rows the iris model takes, but for their numbers: NaN, infinities, nulls, huge values."""
