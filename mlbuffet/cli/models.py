"""`mlbuffet models list|show|push|delete|default`: the model registry from the command line."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from mlbuffet.cli.output import compact, emit, table, terminal_width
from mlbuffet.cli.progress import ProgressBar
from mlbuffet.cli.remote import Command, add_remote_arguments, command_main
from mlbuffet.cli.transport import Transport
from mlbuffet.config import default_environ


def build_parser(environ: Mapping[str, str]) -> argparse.ArgumentParser:
    common = argparse.ArgumentParser(add_help=False)
    add_remote_arguments(common, environ)
    parser = argparse.ArgumentParser(
        prog="mlbuffet models",
        description="List, inspect, upload, delete models and choose their default version, "
        "over the REST API (--url) or NATS (--nats).",
    )
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    listing = commands.add_parser("list", parents=[common], help="every model with its versions")
    listing.add_argument(
        "--wide",
        action="store_true",
        help="whole descriptions (on a terminal, lines are cut with … to fit its width)",
    )
    show = commands.add_parser("show", parents=[common], help="one model: versions, inputs...")
    show.add_argument("model", help="<model>[:<version>]")
    push = commands.add_parser("push", parents=[common], help="upload a new version")
    push.add_argument("model")
    push.add_argument("file", type=Path, help="an .onnx file")
    push.add_argument("--description", help="what this version is")
    push.add_argument(
        "--no-default",
        action="store_true",
        help="keep the current default version (over REST, the upload is the default for a moment)",
    )
    delete = commands.add_parser(
        "delete", parents=[common], help="delete the default version, one version, or all"
    )
    delete.add_argument("model", help="<model> (its default), <model>:<version> or <model>:all")
    default = commands.add_parser("default", parents=[common], help="set the default version")
    default.add_argument("model")
    default.add_argument("version")
    return parser


def check(args: argparse.Namespace) -> None:
    """Parse what names a model on the command line (args.ref, args.name, args.version)."""
    from mlbuffet.protocol.names import ModelRef, parse_model_name, parse_version

    if args.command == "show":
        args.ref = ModelRef.parse(args.model)
    elif args.command == "delete":
        name, _, version = args.model.partition(":")
        args.name = parse_model_name(name)
        args.version = (
            None
            if version in ("", "default")
            else "all"
            if version == "all"
            else parse_version(version)
        )
    elif args.command in ("push", "default"):
        args.name = parse_model_name(args.model)
        if args.command == "default":
            args.version = parse_version(args.version)


async def list_models(transport: Transport, args: argparse.Namespace) -> None:
    models = await transport.list_models()
    if args.json:
        emit(models)
        return
    table(
        ["MODEL", "DEFAULT", "VERSIONS", "DESCRIPTION"],
        [
            [m["model"], m["default_version"], versions(m["versions"]), m["description"]]
            for m in models
        ],
        None if args.wide else terminal_width(),
    )


async def show(transport: Transport, args: argparse.Namespace) -> None:
    details = await transport.show(args.ref)
    if args.json:
        emit(details)
    else:
        print_details(details)


async def push(transport: Transport, args: argparse.Namespace) -> None:
    bar = None
    if sys.stdout.isatty() and not args.json:
        bar = ProgressBar(f"uploading {args.file.name}", args.file.stat().st_size, sys.stdout)
    answer = await transport.push(
        args.name, args.file, args.description, not args.no_default, bar.update if bar else None
    )
    if bar is not None:
        bar.finish()
    say(
        answer,
        args.json,
        f"uploaded {answer['model']} version {answer['version']} "
        f"(default version: {answer['default_version']}, {answer['size']} bytes, "
        f"sha256 {answer['sha256'][:12]})",
    )


async def delete(transport: Transport, args: argparse.Namespace) -> None:
    answer = await transport.delete(args.name, args.version)
    left = (
        f"default version: {answer['default_version']}, versions: {versions(answer['versions'])}"
        if answer["versions"]
        else "no versions left: the model is gone"
    )
    gone = versions(answer["deleted_versions"])
    say(answer, args.json, f"deleted {answer['model']} version {gone} ({left})")


async def set_default(transport: Transport, args: argparse.Namespace) -> None:
    answer = await transport.set_default(args.name, args.version)
    say(answer, args.json, f"{answer['model']}: default version is {answer['default_version']}")


COMMANDS = {
    "list": list_models,
    "show": show,
    "push": push,
    "delete": delete,
    "default": set_default,
}


def prepare(args: argparse.Namespace) -> Command:
    check(args)
    if args.command == "push" and not args.file.is_file():
        raise ValueError(f"{args.file}: no such file")
    handler = COMMANDS[args.command]
    return lambda transport: handler(transport, args)


def main(argv: Sequence[str] | None = None) -> int:
    return command_main(build_parser(default_environ()), argv, prepare)


def versions(numbers: Sequence[int]) -> str:
    return ",".join(map(str, numbers))


def say(answer: Any, as_json: bool, text: str) -> None:
    if as_json:
        emit(answer)
    else:
        print(text)


def print_details(details: Mapping[str, Any]) -> None:
    fields = [
        ("model", details["model"]),
        ("description", details["description"]),
        ("default version", details["default_version"]),
        ("versions", versions(details["versions"])),
        ("version", details["version"]),
        ("version description", details["version_description"]),
        ("file", f"{details['file']} ({details['size']} bytes, sha256 {details['sha256']})"),
        ("library", details["library"]),
        ("uploaded", details["uploaded_at"]),
    ]
    for label, value in fields:
        print(f"{label + ':':<21}{value}")
    for kind in ("inputs", "outputs"):
        print()
        table(
            [kind.upper()[:-1], "DATATYPE", "SHAPE"],
            [[s["name"], s["datatype"], compact(s["shape"])] for s in details[kind]],
        )


if __name__ == "__main__":
    sys.exit(main())
