"""`mlbuffet events`: follow `mlbuffet.events.>` (models, nodes, training) one line per event."""

from __future__ import annotations

import asyncio
import json
import sys
import time
from collections.abc import Mapping, Sequence
from typing import Any

from nats.aio.msg import Msg

from mlbuffet.cli.watch import WatchConfig, watch_parser
from mlbuffet.config import nats_config_from
from mlbuffet.mesh.connection import (
    NatsUnavailableError,
    close_quietly,
    connect,
    flush_subscriptions,
)
from mlbuffet.protocol import subjects
from mlbuffet.protocol.errors import MLBuffetError
from mlbuffet.protocol.wire import unpack_map
from mlbuffet.roles.runner import StartupError, run_role


def parse_args(argv: Sequence[str] | None, environ: Mapping[str, str]) -> tuple[WatchConfig, str]:
    parser = watch_parser(
        "mlbuffet events",
        "Print every model and node event as it happens, until Ctrl-C.",
        environ,
    )
    parser.add_argument("--count", type=int, metavar="N", help="stop after N events")
    args = parser.parse_args(argv)
    return WatchConfig(nats_config_from(args), args.json, count=args.count), args.log_level


def describe(subject: str, event: Mapping[str, Any]) -> str:
    """One line for a person: time, kind, who, what."""
    when = time.strftime("%H:%M:%S", time.localtime(float(event.get("at") or time.time())))
    kind = subject.split(".")[2] if subject.count(".") >= 2 else "event"
    if kind == "node":
        return f"{when} node  {event.get('node')} ({event.get('role')}) {event.get('event')}"
    if kind == "model":
        version = event.get("version")
        name = f"{event.get('model')}" + ("" if version is None else f":{version}")
        return f"{when} model {name} {event.get('event')} by {event.get('node')}"
    fields = " ".join(f"{k}={v}" for k, v in event.items() if k != "type")
    return f"{when} {kind} {fields}"


async def follow(config: WatchConfig, stop: asyncio.Event) -> int:
    try:
        nc = await connect(config.nats, name="mlbuffet-events")
    except NatsUnavailableError as exc:
        raise StartupError(str(exc)) from None
    seen = 0
    done = asyncio.Event()

    async def on_event(msg: Msg) -> None:
        nonlocal seen
        if done.is_set():
            return
        try:
            event = unpack_map(msg.data)
        except MLBuffetError:
            return
        if config.json:
            print(json.dumps({"subject": msg.subject, **event}, default=str), flush=True)
        else:
            print(describe(msg.subject, event), flush=True)
        seen += 1
        if config.count is not None and seen >= config.count:
            done.set()

    try:
        await nc.subscribe(subjects.all_events(), cb=on_event)
        await flush_subscriptions(nc)
        print(f"following {subjects.all_events()} (Ctrl-C stops)", file=sys.stderr, flush=True)
        waits = [asyncio.ensure_future(stop.wait()), asyncio.ensure_future(done.wait())]
        try:
            await asyncio.wait(waits, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for wait in waits:
                wait.cancel()
    finally:
        await close_quietly(nc)
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    return run_role(argv, parse_args, follow)


if __name__ == "__main__":
    sys.exit(main())
