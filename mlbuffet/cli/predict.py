"""`mlbuffet predict <model>[:<version>]`: one prediction from JSON values, an image or .npy files."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from mlbuffet.cli.output import compact, emit
from mlbuffet.cli.remote import Command, add_remote_arguments, command_main
from mlbuffet.cli.transport import PredictInput, Transport
from mlbuffet.codecs.json_input import read_json
from mlbuffet.config import default_environ
from mlbuffet.protocol.errors import BadRequestError

PREPROCESSING = ("raw", "unit", "imagenet")
"""As mlbuffet.codecs.images.PREPROCESSING; spelled here so --help needs no pillow."""


def build_parser(environ: Mapping[str, str]) -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="mlbuffet predict",
        description="One prediction, over the REST API (--url) or NATS (--nats).",
    )
    parser.add_argument("model", help="<model>[:<version>] (the default version without one)")
    given = parser.add_mutually_exclusive_group(required=True)
    given.add_argument(
        "--values",
        metavar="JSON",
        help="a row, a batch, or {input: values} for several inputs, as JSON; - reads stdin",
    )
    given.add_argument("--image", type=Path, metavar="FILE", help="an image (JPEG, PNG, ...)")
    given.add_argument(
        "--input",
        action="append",
        metavar="[NAME=]FILE.npy",
        help="an input as a numpy .npy file, its dtype as saved; repeat for several inputs",
    )
    parser.add_argument(
        "--preprocess",
        choices=PREPROCESSING,
        default="raw",
        help="pixel values of --image: raw 0..255, unit /255, imagenet (default %(default)s)",
    )
    parser.add_argument("--image-input", metavar="NAME", help="the input --image goes to")
    add_remote_arguments(parser, environ)
    return parser


def read_input(args: argparse.Namespace) -> PredictInput:
    """What to send; ValueError with a message for the user if a file or JSON is wrong."""
    if args.values is not None:
        raw = sys.stdin.read() if args.values == "-" else args.values
        try:
            return PredictInput(values=read_json(raw, "--values"))
        except BadRequestError as exc:
            raise ValueError(exc.message) from None
    if args.image is not None:
        if not args.image.is_file():
            raise ValueError(f"--image {args.image}: no such file")
        return PredictInput(
            image=args.image, preprocess=args.preprocess, image_input=args.image_input
        )
    import numpy as np

    arrays: dict[str, Any] = {}
    for item in args.input:
        name, _, file = item.rpartition("=")
        if name in arrays:
            raise ValueError(f"--input {name or file}: given twice")
        try:
            arrays[name] = np.load(file, allow_pickle=False)
        except (OSError, ValueError) as exc:
            raise ValueError(f"--input {item}: not a readable .npy file ({exc})") from None
    if "" in arrays and len(arrays) > 1:
        raise ValueError("name every --input (NAME=FILE.npy) when there are several")
    return PredictInput(arrays=arrays)


def print_prediction(answer: Mapping[str, Any]) -> None:
    print(f"{answer['model']}:{answer['version']} answered by {answer['node']}")
    for name, value in answer["outputs"].items():
        print(f"{name}: {compact(value)}")


def prepare(args: argparse.Namespace) -> Command:
    from mlbuffet.protocol.names import ModelRef

    ref = ModelRef.parse(args.model)
    given = read_input(args)

    async def predict(transport: Transport) -> None:
        answer = await transport.predict(ref, given)
        if args.json:
            emit(answer)
        else:
            print_prediction(answer)

    return predict


def main(argv: Sequence[str] | None = None) -> int:
    return command_main(build_parser(default_environ()), argv, prepare)


if __name__ == "__main__":
    sys.exit(main())
