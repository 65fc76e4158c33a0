"""A real webhook receiver for the server suite that can fail, be down, and answer slowly.

:class:`Receiver` is a raw ASGI app on uvicorn, bound to 127.0.0.1 at once but
listening only from :meth:`Receiver.start` (until then deliveries are refused, as by a
receiver that is down); ``answer`` and ``stall`` choose each delivery's status and
delay. (``tavkit.testing.webhooks.WebhookReceiver`` is the plain one the plugin gives
integrators; this one is for the delivery guarantees.) The ``receiver`` fixture is in
``conftest.py``.
"""

from __future__ import annotations

import asyncio
import json
import secrets
import socket
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import uvicorn

from tavkit.server.listen import listening_socket

from ._util import eventually

if TYPE_CHECKING:
    from conftest import RunningServer, ServerFactory

__all__ = ["FAST", "SECRET", "Delivery", "Receiver", "start_server"]

SECRET = "whsec_" + secrets.token_hex(16)
FAST = {
    "webhook_retry_base": 0.02,
    "webhook_retry_cap": 0.1,
    "webhook_poll_interval": 0.05,
    "webhook_timeout": 5.0,
}
"""Short delays, so retries happen many times a second (nothing asserts how long)."""


@dataclass
class Delivery:
    """One POST as the receiver saw it."""

    event_id: str
    signature: str
    body: bytes
    status: int


@dataclass
class Receiver:
    """A real HTTP endpoint on 127.0.0.1 that answers each POST with ``answer``'s status.

    Its socket is bound at once but listens only from :meth:`start`, so until then
    deliveries are refused as by a receiver that is down.
    """

    answer: Callable[[str, int], int] = lambda _id, _attempt: 200
    """(event id, how many times this id came before) -> HTTP status."""
    stall: Callable[[str, int], float] = lambda _id, _attempt: 0.0
    """(event id, how many times this id came before) -> seconds to wait before answering."""
    deliveries: list[Delivery] = field(default_factory=list)
    sock: socket.socket = field(default_factory=lambda: listening_socket("127.0.0.1", 0))
    _server: uvicorn.Server | None = None
    _task: asyncio.Task[None] | None = None

    @property
    def url(self) -> str:
        """Where to send webhooks."""
        return f"http://127.0.0.1:{self.sock.getsockname()[1]}/hooks/tavkit"

    async def app(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        """A raw ASGI app: record the POST, answer with the chosen status."""
        if scope["type"] != "http":
            return
        body = b""
        while True:
            message = await receive()
            body += message.get("body", b"")
            if not message.get("more_body"):
                break
        headers = {k.decode().lower(): v.decode() for k, v in scope["headers"]}
        event_id = headers.get("tavkit-event-id", "")
        before = sum(1 for d in self.deliveries if d.event_id == event_id)
        status = self.answer(event_id, before)
        await asyncio.sleep(self.stall(event_id, before))
        self.deliveries.append(
            Delivery(event_id, headers.get("tavkit-signature", ""), body, status)
        )
        await send({"type": "http.response.start", "status": status, "headers": []})
        await send({"type": "http.response.body", "body": b""})

    async def start(self) -> None:
        """Start listening (the receiver comes up)."""
        config = uvicorn.Config(self.app, lifespan="off", log_level="warning", interface="asgi3")
        self._server = uvicorn.Server(config)
        self._task = asyncio.create_task(self._server.serve(sockets=[self.sock]))
        await eventually(self._started)

    async def _started(self) -> bool:
        return self._server is not None and self._server.started

    async def stop(self) -> None:
        """Stop serving."""
        if self._server is not None and self._task is not None:
            self._server.should_exit = True
            await asyncio.wait_for(self._task, 30)
        self.sock.close()

    def accepted(self) -> list[dict[str, Any]]:
        """The bodies answered with a 2xx, in arrival order, each event id once (dedup)."""
        seen: set[str] = set()
        found = []
        for d in self.deliveries:
            if 200 <= d.status < 300 and d.event_id not in seen:
                seen.add(d.event_id)
                found.append(json.loads(d.body))
        return found


async def start_server(
    factory: ServerFactory, receiver: Receiver | None = None, **settings: Any
) -> RunningServer:
    """A real server (sending to ``receiver``), started off the event loop the receiver
    runs on."""
    if receiver is not None:
        settings = {"webhook_url": receiver.url, "webhook_secret": SECRET, **settings}
    return await asyncio.to_thread(lambda: factory(**{**FAST, **settings}))
