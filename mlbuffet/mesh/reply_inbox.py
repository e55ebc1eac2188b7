"""Replies to many requests on one wildcard inbox subscription, handed to whoever waits for them.

nc.request gives each request a future that is dropped when its own timeout
fires, so a late reply is lost. A hedged request must keep every copy it sent
listening while it waits in short steps; so its replies come here instead:
one subscription per connection (as nats-py's own request mux), each reply
handed to the request that registered its token. The cost per request is the
same as nc.request's: one publish, one callback.
"""

from __future__ import annotations

import asyncio
import itertools
import weakref
from collections.abc import Mapping
from typing import Protocol

from nats.aio.client import Client
from nats.aio.msg import Msg
from nats.aio.subscription import Subscription

NO_RESPONDERS_STATUS = "503"


class ReplyWaiter(Protocol):
    def deliver(self, token: str, msg: Msg) -> None: ...


class ReplyInbox:
    """One connection's inbox for replies: `_INBOX.<id>.<token>`, one token per request sent."""

    def __init__(self, nc: Client) -> None:
        self._nc = weakref.ref(nc)  # the connection holds us (our callback), not the reverse
        self.prefix = nc.new_inbox() + "."
        self.waiting: dict[str, ReplyWaiter] = {}
        self._tokens = itertools.count()
        self._subscribed: asyncio.Task[Subscription] | None = None

    @classmethod
    def of(cls, nc: Client) -> ReplyInbox:
        inbox = _INBOXES.get(nc)
        if inbox is None:
            inbox = _INBOXES[nc] = cls(nc)
        return inbox

    async def send(
        self, waiter: ReplyWaiter, subject: str, payload: bytes, headers: Mapping[str, str]
    ) -> str:
        """Publish a request whose reply goes to `waiter.deliver`; its token."""
        nc = self._nc()
        assert nc is not None, "a reply inbox outlived its connection"
        subscribed = self._subscribed
        if subscribed is None or (subscribed.done() and subscribed.exception() is not None):
            # The first sender subscribes; those that come meanwhile wait for the same task.
            subscribed = self._subscribed = asyncio.ensure_future(
                nc.subscribe(self.prefix + "*", cb=self._on_reply)
            )
        await subscribed
        token = str(next(self._tokens))
        self.waiting[token] = waiter
        try:
            # No headers at all rather than an empty block: nats-py would still write one.
            await nc.publish(
                subject, payload, reply=self.prefix + token, headers=dict(headers) or None
            )
        except BaseException:
            del self.waiting[token]
            raise
        return token

    def forget(self, token: str) -> None:
        """No reply to `token` is wanted any more (a late one is dropped)."""
        self.waiting.pop(token, None)

    async def _on_reply(self, msg: Msg) -> None:
        token = msg.subject[len(self.prefix) :]
        waiter = self.waiting.pop(token, None)
        if waiter is not None:
            waiter.deliver(token, msg)


def is_no_responders(msg: Msg) -> bool:
    """The server's own answer to a request nobody subscribes to."""
    return not msg.data and bool(msg.headers) and msg.headers.get("Status") == NO_RESPONDERS_STATUS  # type: ignore[union-attr]


_INBOXES: weakref.WeakKeyDictionary[Client, ReplyInbox] = weakref.WeakKeyDictionary()
