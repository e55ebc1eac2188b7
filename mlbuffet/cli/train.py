"""`mlbuffet train submit|status|logs|cancel|list`: training jobs from the command line.

`mlbuffet train <model> --script ...` is short for `mlbuffet train submit
<model> ...`. A command that waits for a job's end (`submit --follow`,
`logs --follow`) says how it ended in its exit status: 6 failed, 7 cancelled.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, TextIO

from mlbuffet.cli.output import Exit, emit, table
from mlbuffet.cli.remote import Command, add_remote_arguments, command_main
from mlbuffet.cli.transport import TrainRequest, Transport
from mlbuffet.config import default_environ
from mlbuffet.protocol.errors import MLBuffetError

SUBCOMMANDS = ("submit", "status", "logs", "cancel", "list")


def build_parser(environ: Mapping[str, str]) -> argparse.ArgumentParser:
    common = argparse.ArgumentParser(add_help=False)
    add_remote_arguments(common, environ)
    parser = argparse.ArgumentParser(
        prog="mlbuffet train",
        description="Train a new model version from a script, its requirements and a dataset; "
        "follow, list and cancel jobs; over the REST API (--url) or NATS (--nats). "
        "`mlbuffet train <model> ...` is short for `mlbuffet train submit <model> ...`.",
    )
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    submit = commands.add_parser("submit", parents=[common], help="submit a training job")
    submit.add_argument(
        "model",
        help="the model the job trains a new version of (iris.onnx: model iris, and the "
        "script writes iris.onnx)",
    )
    submit.add_argument("--script", type=Path, required=True, help="the training script")
    submit.add_argument("--requirements", type=Path, required=True, help="its pip requirements.txt")
    submit.add_argument("--dataset", type=Path, required=True, help="the data file")
    submit.add_argument(
        "--data", type=Path, action="append", default=[], help="one more data file (repeatable)"
    )
    submit.add_argument(
        "--output-file",
        metavar="NAME",
        help="the file the script writes, as its first argument or in its working folder "
        "(default model.onnx)",
    )
    submit.add_argument("--description", help="the new version's description")
    submit.add_argument(
        "--no-default", action="store_true", help="keep the current default version"
    )
    submit.add_argument(
        "--job-timeout",
        type=float,
        metavar="SECONDS",
        help="the script's wall-clock limit (default: the trainer's, 600 s)",
    )
    submit.add_argument(
        "--follow",
        action="store_true",
        help="print the log as it grows, then how the job ended (exit 6 failed, 7 cancelled)",
    )
    for name, text in (
        ("status", "one job: state, times, version, reason"),
        ("cancel", "cancel a job"),
    ):
        one = commands.add_parser(name, parents=[common], help=text)
        one.add_argument("job")
    logs = commands.add_parser("logs", parents=[common], help="a job's log")
    logs.add_argument("job")
    logs.add_argument(
        "--follow",
        action="store_true",
        help="keep printing until the job ends (exit 6, 7 as above)",
    )
    commands.add_parser("list", parents=[common], help="the recent jobs, newest first")
    return parser


def _request(args: argparse.Namespace) -> TrainRequest:
    from mlbuffet.protocol.names import parse_train_target

    for flag, path in (
        ("--script", args.script),
        ("--requirements", args.requirements),
        ("--dataset", args.dataset),
        *(("--data", p) for p in args.data),
    ):
        if not path.is_file():
            raise ValueError(f"{flag} {path}: no such file")
    if args.job_timeout is not None and not args.job_timeout > 0:
        raise ValueError("--job-timeout must be positive")
    model, output_file = parse_train_target(args.model, args.output_file)
    return TrainRequest(
        model=model,
        script=args.script,
        requirements=args.requirements,
        dataset=args.dataset,
        data=tuple(args.data),
        output_file=output_file,
        description=args.description,
        make_default=not args.no_default,
        timeout_s=args.job_timeout,
    )


STATE_POLL_S = 1.0
"""How often a followed job's state is looked at (its log lines arrive as they are written)."""


def ending(job: Mapping[str, Any]) -> str:
    """One line: how a job ended (or where it is)."""
    state = job["state"]
    if state == "succeeded":
        default = " (the default version)" if job["make_default"] else ""
        return f"job {job['job']} succeeded: {job['model']} version {job['version']}{default}"
    if job.get("reason"):
        return f"job {job['job']} {state}: {job['reason']}"
    return f"job {job['job']} {state}"


def exit_for_job(job: Mapping[str, Any]) -> int:
    return {"failed": Exit.JOB_FAILED, "cancelled": Exit.JOB_CANCELLED}.get(job["state"], Exit.OK)


async def watch_states(transport: Transport, job: str, out: TextIO) -> None:
    """Print `job <id>: <state>` each time the job's state changes, until cancelled."""
    last = None
    while True:
        try:
            state = (await transport.job(job))["state"]
        except MLBuffetError:
            state = last  # a missed look is tried again; the log goes on meanwhile
        if state != last:
            print(f"job {job}: {state}", file=out, flush=True)
            last = state
        await asyncio.sleep(STATE_POLL_S)


async def follow(transport: Transport, job: str, as_json: bool) -> int:
    """Print the log as it grows and the job's state changes (to stderr with --json), then how
    the job ended."""
    out = sys.stderr if as_json else sys.stdout
    states = asyncio.create_task(watch_states(transport, job, out))
    try:
        async for line in transport.job_logs(job, follow=True):
            print(line, file=out, flush=True)
    finally:
        states.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await states
    final = await transport.job(job)
    if as_json:
        emit(final)
    else:
        print(ending(final))
    return exit_for_job(final)


async def submit(transport: Transport, args: argparse.Namespace, request: TrainRequest) -> int:
    accepted = await transport.train(request)
    if args.follow:
        if not args.json:
            print(f"submitted job {accepted['job']} for model {accepted['model']}", flush=True)
        return await follow(transport, accepted["job"], args.json)
    if args.json:
        emit(accepted)
    else:
        print(
            f"submitted job {accepted['job']} for model {accepted['model']} ({accepted['state']})"
        )
    return Exit.OK


async def status(transport: Transport, args: argparse.Namespace) -> None:
    job = await transport.job(args.job)
    if args.json:
        emit(job)
        return
    fields = [
        ("job", job["job"]),
        ("model", job["model"]),
        ("state", job["state"]),
        ("version", job["version"]),
        ("reason", job["reason"]),
        ("exit code", job["exit_code"]),
        ("node", f"{job['node']} ({job['backend']})" if job["node"] else None),
        ("submitted", job["submitted_at"]),
        ("started", job["started_at"]),
        ("finished", job["finished_at"]),
    ]
    for label, value in fields:
        print(f"{label + ':':<11}{'' if value is None else value}")


async def logs(transport: Transport, args: argparse.Namespace) -> int:
    if args.follow:
        return await follow(transport, args.job, args.json)
    lines = [line async for line in transport.job_logs(args.job, follow=False)]
    if args.json:
        emit({"job": args.job, "lines": lines})
    else:
        for line in lines:
            print(line)
    return Exit.OK


async def cancel(transport: Transport, args: argparse.Namespace) -> None:
    job = await transport.cancel(args.job)
    if args.json:
        emit(job)
    elif job["state"] == "cancelled":
        print(f"job {job['job']} cancelled")
    else:
        print(f"job {job['job']}: cancel requested, its trainer is stopping it ({job['state']})")


async def list_jobs(transport: Transport, args: argparse.Namespace) -> None:
    jobs = await transport.jobs()
    if args.json:
        emit(jobs)
        return
    table(
        ["JOB", "MODEL", "STATE", "VERSION", "SUBMITTED", "REASON"],
        [
            [j["job"], j["model"], j["state"], j["version"], j["submitted_at"], j["reason"]]
            for j in jobs
        ],
    )


def prepare(args: argparse.Namespace) -> Command:
    from mlbuffet.protocol.names import parse_job_id

    if args.command == "submit":
        request = _request(args)
        return lambda transport: submit(transport, args, request)
    if args.command == "list":
        return lambda transport: list_jobs(transport, args)
    parse_job_id(args.job)
    handler = {"status": status, "logs": logs, "cancel": cancel}[args.command]
    return lambda transport: handler(transport, args)


def main(argv: Sequence[str] | None = None) -> int:
    args = list(sys.argv[1:] if argv is None else argv)
    if args and not args[0].startswith("-") and args[0] not in SUBCOMMANDS:
        args.insert(0, "submit")
    return command_main(build_parser(default_environ()), args, prepare)


if __name__ == "__main__":
    sys.exit(main())
