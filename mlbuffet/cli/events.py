"""`mlbuffet events`: follow `mlbuffet.events.>` (models, nodes, training) one line per event."""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import time
from collections.abc import Mapping, Sequence
from typing import Any

from nats.aio.client import Client
from nats.aio.msg import Msg

from mlbuffet.cli.watch import WatchConfig, watch_parser
from mlbuffet.config import nats_config_from
from mlbuffet.mesh.connection import (
    NatsUnavailableError,
    close_quietly,
    connect,
    flush_subscriptions,
)
from mlbuffet.observe.event_history import EventReplay, Since
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
    parser.add_argument(
        "--since",
        type=_since,
        metavar="SEQ|DURATION",
        help="first replay the events the mesh kept: from sequence SEQ of "
        f"{subjects.EVENTS_STREAM} (--json shows each one's), or from DURATION ago "
        "(90s, 15m, 2h, 1d); then follow",
    )
    args = parser.parse_args(argv)
    config = WatchConfig(nats_config_from(args), args.json, count=args.count, since=args.since)
    return config, args.log_level


def _since(text: str) -> Since:
    try:
        return Since.parse(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def describe(subject: str, event: Mapping[str, Any]) -> str:
    """One line for a person: time, kind, who, what."""
    when = time.strftime("%H:%M:%S", time.localtime(float(event.get("at") or time.time())))
    kind = subject.split(".")[2] if subject.count(".") >= 2 else "event"
    if kind == "node":
        return f"{when} node  {event.get('node')} ({event.get('role')}) {event.get('event')}"
    if kind == "train":
        record = event.get("record") or {}
        spec = record.get("spec") or {}
        return f"{when} train {event.get('job')} {record.get('state')} ({spec.get('model')})"
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
    if config.since is not None:
        try:
            return await replay(nc, config, stop)
        finally:
            await close_quietly(nc)
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


async def replay(nc: Client, config: WatchConfig, stop: asyncio.Event) -> int:
    """The kept events from `config.since`, then the new ones, until Ctrl-C or --count."""
    assert config.since is not None
    print(
        f"replaying {subjects.EVENTS_STREAM} and training states, then following (Ctrl-C stops)",
        file=sys.stderr,
        flush=True,
    )

    async def show() -> None:
        seen = 0
        async for event in EventReplay(nc.jetstream(), config.since or Since()):
            if config.json:
                where = {"stream": event.stream, "seq": event.seq}
                print(json.dumps({"subject": event.subject, **where, **event.data}, default=str))
            else:
                print(describe(event.subject, event.data), flush=True)
            seen += 1
            if config.count is not None and seen >= config.count:
                return

    showing = asyncio.ensure_future(show())
    stopping = asyncio.ensure_future(stop.wait())
    try:
        await asyncio.wait([showing, stopping], return_when=asyncio.FIRST_COMPLETED)
    finally:
        for task in (showing, stopping):
            task.cancel()
        await asyncio.gather(showing, stopping, return_exceptions=True)
    if showing.done() and not showing.cancelled() and showing.exception() is not None:
        raise StartupError(f"cannot replay the events: {showing.exception()}")
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    return run_role(argv, parse_args, follow)


if __name__ == "__main__":
    sys.exit(main())
