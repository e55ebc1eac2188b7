"""The raw NATS reference: a Python responder that answers every request with its own payload.

python -m bench.peers.nats_echo NATS_URL SUBJECT
"""

from __future__ import annotations

import asyncio
import sys

import nats
from nats.aio.msg import Msg

from mlbuffet.roles.runner import run


async def serve(url: str, subject: str) -> None:
    nc = await nats.connect(url)

    async def echo(msg: Msg) -> None:
        await msg.respond(msg.data)

    await nc.subscribe(subject, cb=echo)
    await nc.flush()
    print("echo ready", flush=True)
    await asyncio.Event().wait()


if __name__ == "__main__":
    run(serve(sys.argv[1], sys.argv[2]))
