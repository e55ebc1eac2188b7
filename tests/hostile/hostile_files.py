"""Hostile files: not-ONNX, truncated ONNX, tensor bombs, zip/gzip bombs, image bombs.

Every bomb is small on disk and cheap to make: the tests run on a shared
2-core machine, so nothing here compresses gigabytes to build a bomb.
"""

from __future__ import annotations

import functools
import gzip
import io
import struct
import zlib
from pathlib import Path

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper
from PIL import Image

from tests.onnx_models import OPSET

MIB = 1 << 20


def _model(graph: onnx.GraphProto) -> bytes:
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", OPSET)], ir_version=8)
    data: bytes = model.SerializeToString()
    return data


def initializer_bomb() -> bytes:
    """An initializer that declares 2**31 x 2**31 floats (16 EiB) and holds none."""
    weight = TensorProto(name="w", data_type=TensorProto.FLOAT, dims=[2**31, 2**31], raw_data=b"")
    graph = helper.make_graph(
        [helper.make_node("Add", ["x", "w"], ["y"])],
        "initializer_bomb",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [None, None])],
        initializer=[weight],
    )
    return _model(graph)


def declared_input_bomb(dims: list[int]) -> bytes:
    """A valid model whose fixed input and output have shape `dims` (warming it would allocate it)."""
    graph = helper.make_graph(
        [helper.make_node("Identity", ["x"], ["y"])],
        "input_bomb",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, dims)],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, dims)],
    )
    return _model(graph)


def external_data_bomb() -> bytes:
    """Weights 'stored' in a file next to the model, at a path that climbs out of any folder."""
    weight = numpy_helper.from_array(np.zeros((4,), dtype=np.float32), "w")
    weight.ClearField("raw_data")
    weight.data_location = TensorProto.EXTERNAL
    for key, value in (("location", "../../../../etc/passwd"), ("length", str(1 << 40))):
        entry = weight.external_data.add()
        entry.key, entry.value = key, value
    graph = helper.make_graph(
        [helper.make_node("Add", ["x", "w"], ["y"])],
        "external_bomb",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [4])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [4])],
        initializer=[weight],
    )
    return _model(graph)


def png_bytes(size: tuple[int, int] = (8, 8)) -> bytes:
    out = io.BytesIO()
    Image.new("RGB", size, (10, 20, 30)).save(out, format="PNG")
    return out.getvalue()


@functools.cache
def zip_bomb(inflated: int = 2 << 30) -> bytes:
    """A zip whose one member inflates to `inflated` bytes of zeros (2 GiB by default).

    Built from one compressed block repeated, so making it costs a few MiB of zlib work.
    """
    block = 16 * MIB
    compressor = zlib.compressobj(9, zlib.DEFLATED, -15)
    one = compressor.compress(bytes(block))
    # A stream of full-flushed blocks can be repeated: each block ends byte-aligned.
    one += compressor.flush(zlib.Z_FULL_FLUSH)
    tail = compressor.flush(zlib.Z_FINISH)
    repeats = inflated // block
    deflated = one * repeats + tail
    crc = 0
    zero_crc = zlib.crc32(bytes(block))
    for _ in range(repeats):
        crc = _crc_combine(crc, zero_crc, block)
    name = b"data.bin"
    local = struct.pack(
        "<IHHHHHIIIHH", 0x04034B50, 45, 0, 8, 0, 0, crc, 0xFFFFFFFF, 0xFFFFFFFF, len(name), 20
    )
    zip64_local = struct.pack("<HHQQ", 1, 16, repeats * block, len(deflated))
    central = struct.pack(
        "<IHHHHHHIIIHHHHHII",
        0x02014B50, 45, 45, 0, 8, 0, 0, crc, 0xFFFFFFFF, 0xFFFFFFFF, len(name), 28, 0, 0, 0, 0, 0,
    )  # fmt: skip
    zip64_central = struct.pack("<HHQQQ", 1, 24, repeats * block, len(deflated), 0)
    body = local + name + zip64_local + deflated
    directory = central + name + zip64_central
    end64 = struct.pack(
        "<IQHHIIQQQQ", 0x06064B50, 44, 45, 45, 0, 0, 1, 1, len(directory), len(body)
    )
    locator = struct.pack("<IIQI", 0x07064B50, 0, len(body) + len(directory), 1)
    end = struct.pack("<IHHHHIIH", 0x06054B50, 0, 0, 1, 1, len(directory), len(body), 0)
    return body + directory + end64 + locator + end


def _crc_combine(crc1: int, crc2: int, len2: int) -> int:
    """crc32 of A+B from crc32(A), crc32(B) and len(B) (zlib's crc32_combine)."""

    def times(matrix: list[int], vector: int) -> int:
        out, i = 0, 0
        while vector:
            if vector & 1:
                out ^= matrix[i]
            vector >>= 1
            i += 1
        return out

    def square(matrix: list[int]) -> list[int]:
        return [times(matrix, matrix[n]) for n in range(32)]

    one_bit = [0xEDB88320] + [1 << n for n in range(31)]
    operator = square(square(square(one_bit)))  # appends one zero byte
    while len2:
        if len2 & 1:
            crc1 = times(operator, crc1)
        len2 >>= 1
        operator = square(operator)
    return crc1 ^ crc2


@functools.cache
def gzip_bomb(inflated: int = 1 << 30) -> bytes:
    """Gzip members of 16 MiB of zeros, concatenated: `inflated` bytes from about 1/1000 of it."""
    member = gzip.compress(bytes(16 * MIB), compresslevel=9)
    return member * (inflated // (16 * MIB))


def _png_chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))


def png_declaring(width: int, height: int) -> bytes:
    """A tiny PNG whose header declares width x height greyscale pixels (the pixels are absent)."""
    header = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n"
        + _png_chunk(b"IHDR", header)
        + _png_chunk(b"IDAT", zlib.compress(bytes(64)))
        + _png_chunk(b"IEND", b"")
    )


def png_text_bomb() -> bytes:
    """A real small PNG with a compressed text chunk that inflates to 64 MiB."""
    image = png_bytes()
    text = b"Comment\x00\x00" + zlib.compress(bytes(64 * MIB), 9)
    end = image.rindex(b"IEND") - 4
    return image[:end] + _png_chunk(b"zTXt", text) + image[end:]


def gif_declaring(width: int, height: int) -> bytes:
    """A GIF whose screen and frame declare width x height pixels, with one pixel of data."""
    screen = (
        b"GIF89a" + struct.pack("<HHBBB", width, height, 0x80, 0, 0) + b"\x00\x00\x00\xff\xff\xff"
    )
    frame = b"\x2c" + struct.pack("<HHHHB", 0, 0, width, height, 0) + b"\x02\x02\x44\x01\x00"
    return screen + frame + b"\x3b"


def jpeg_declaring(width: int, height: int) -> bytes:
    """A real small JPEG with its frame header patched to declare width x height."""
    out = io.BytesIO()
    Image.new("RGB", (8, 8), (200, 100, 50)).save(out, format="JPEG")
    data = bytearray(out.getvalue())
    sof = data.index(b"\xff\xc0")
    data[sof + 5 : sof + 9] = struct.pack(">HH", height, width)
    return bytes(data)


def write(folder: Path, name: str, data: bytes) -> Path:
    path = folder / name
    path.write_bytes(data)
    return path
