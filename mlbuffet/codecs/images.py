"""An uploaded image -> the input tensor of an image model.

Layout comes from the input's shape: rank 4 is NCHW when dimension 1 is a
channel count (1, 3 or 4) and NHWC when dimension 3 is; rank 3 is the same
without the batch. Fixed height and width resize the image (bilinear);
dynamic ones keep its size. 1 channel is greyscale, 3 RGB, 4 RGBA.
Pixel values, by `preprocess`:
- `raw` (default, as the original MLBuffet): 0..255 in the input's datatype;
- `unit`: divided by 255 (floating-point inputs only);
- `imagenet`: divided by 255, then normalised with the ImageNet channel mean
  and standard deviation (floating-point, 3-channel inputs only).
"""

from __future__ import annotations

import io
import warnings
from typing import Any

import numpy as np
import numpy.typing as npt
from PIL import Image, UnidentifiedImageError

from mlbuffet.protocol import tensors
from mlbuffet.protocol.errors import (
    PayloadTooLargeError,
    UnprocessableError,
    UnsupportedMediaTypeError,
)
from mlbuffet.protocol.inference import Tensor
from mlbuffet.protocol.records import DYNAMIC, Signature, TensorSpec

PREPROCESSING = ("raw", "unit", "imagenet")
MAX_PIXELS = 64 * 1024 * 1024
"""Decoded size limit: a small file can declare a huge image (a decompression bomb)."""

IMAGENET_MEAN = np.array([0.485, 0.456, 0.406], dtype=np.float32)
IMAGENET_STD = np.array([0.229, 0.224, 0.225], dtype=np.float32)
_CHANNELS = (1, 3, 4)
_MODES = {1: "L", 3: "RGB", 4: "RGBA"}


def image_input(signature: Signature, name: str | None) -> TensorSpec:
    """The input an image goes to: the one named, or the model's only input."""
    if name is not None:
        for spec in signature.inputs:
            if spec.name == name:
                return spec
        raise UnprocessableError(
            f"unknown input {name!r}; the model takes {', '.join(s.name for s in signature.inputs)}"
        )
    if len(signature.inputs) != 1:
        raise UnprocessableError(
            "the model takes several inputs: name the image's with the field or parameter 'input'"
        )
    return signature.inputs[0]


def layout_of(spec: TensorSpec) -> tuple[bool, bool]:
    """(batched, channels_first) for an image input; UnprocessableError if it takes no image."""
    shape = spec.shape
    if len(shape) not in (3, 4):
        raise UnprocessableError(
            f"input {spec.name!r} has shape {list(shape)}; an image needs rank 3 or 4 (NCHW or NHWC)"
        )
    batched = len(shape) == 4
    dims = shape[1:] if batched else shape
    if dims[0] in _CHANNELS and dims[2] not in _CHANNELS:
        return batched, True
    if dims[2] in _CHANNELS:
        return batched, False
    return batched, True  # both open: NCHW is the ONNX convention


def image_tensor(data: bytes, spec: TensorSpec, preprocess: str = "raw") -> Tensor:
    """Decode `data` with pillow and lay it out for `spec`, as a wire tensor."""
    datatype, shape, raw = tensors.encode_array(image_array(data, spec, preprocess))
    return Tensor(name=spec.name, datatype=datatype, shape=tuple(shape), data=raw)


def image_array(data: bytes, spec: TensorSpec, preprocess: str = "raw") -> npt.NDArray[Any]:
    """Decode `data` with pillow and lay it out for `spec`."""
    if preprocess not in PREPROCESSING:
        raise UnprocessableError(f"preprocess must be one of {', '.join(PREPROCESSING)}")
    dtype = tensors.DTYPES.get(spec.datatype)
    if dtype is None or spec.datatype == "BOOL":
        raise UnprocessableError(f"input {spec.name!r} ({spec.datatype}) does not take images")
    if preprocess != "raw" and dtype.kind != "f":
        raise UnprocessableError(
            f"preprocess={preprocess} needs a floating-point input; {spec.name!r} is {spec.datatype}"
        )
    batched, channels_first = layout_of(spec)
    dims = spec.shape[1:] if batched else spec.shape
    channels, height, width = (
        (dims[0], dims[1], dims[2]) if channels_first else (dims[2], dims[0], dims[1])
    )
    channels = 3 if channels == DYNAMIC else channels
    if preprocess == "imagenet" and channels != 3:
        raise UnprocessableError("preprocess=imagenet needs a 3-channel input")

    image = decode(data).convert(_MODES[channels])
    if height != DYNAMIC or width != DYNAMIC:
        size = (
            image.width if width == DYNAMIC else width,
            image.height if height == DYNAMIC else height,
        )
        if size != image.size:
            image = image.resize(size, Image.Resampling.BILINEAR)
    pixels: npt.NDArray[Any] = np.asarray(image, dtype=np.uint8)
    if pixels.ndim == 2:
        pixels = pixels[:, :, np.newaxis]
    array = _scale(pixels, preprocess).astype(dtype)
    if channels_first:
        array = array.transpose(2, 0, 1)
    if batched:
        array = array[np.newaxis, ...]
    return array


def decode(data: bytes) -> Image.Image:
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            image = Image.open(io.BytesIO(data))
            if image.width * image.height > MAX_PIXELS:
                raise PayloadTooLargeError(
                    f"the image is {image.width}x{image.height} pixels; the limit is {MAX_PIXELS} pixels"
                )
            image.load()
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError):
        raise UnsupportedMediaTypeError(
            "the file is not an image pillow can read (JPEG, PNG, BMP, GIF, TIFF, WebP, ...)"
        ) from None
    except (Image.DecompressionBombWarning, Image.DecompressionBombError):
        raise PayloadTooLargeError("the image declares too many pixels") from None
    return image


def _scale(pixels: npt.NDArray[np.uint8], preprocess: str) -> npt.NDArray[Any]:
    if preprocess == "raw":
        return pixels
    unit = pixels.astype(np.float32) / 255.0
    if preprocess == "unit":
        return unit
    return (unit - IMAGENET_MEAN) / IMAGENET_STD
