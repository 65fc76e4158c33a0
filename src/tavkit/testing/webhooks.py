"""A real webhook endpoint on 127.0.0.1 that keeps what the server sent it.

The ``tavkit_server`` fixture configures its app to deliver to a
:class:`WebhookReceiver`: a plain HTTP server in a thread (so it answers whatever
event loop the test runs, or none). Every POST is checked with the documented
verifier (:func:`tavkit.webhooks.verify`) against the receiver's secret, kept as a
:class:`Delivery`, and answered 204; :attr:`WebhookReceiver.events` are the verified
events, each ``Tavkit-Event-Id`` once, in arrival order.
"""

from __future__ import annotations

import json
import secrets
import threading
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from tavkit.testing._wait import TIMEOUT, until
from tavkit.webhooks import SIGNATURE_HEADER, WebhookSignatureError, verify

__all__ = ["Delivery", "WebhookReceiver"]

_PATH = "/hooks/tavkit"
_MAX_BODY = 1 << 20


@dataclass(frozen=True)
class Delivery:
    """One POST as the receiver saw it."""

    event_id: str
    body: bytes
    verified: bool
    """Whether its ``Tavkit-Signature`` checks out with the receiver's secret."""

    def event(self) -> dict[str, Any]:
        """The event, parsed."""
        parsed: dict[str, Any] = json.loads(self.body)
        return parsed


class WebhookReceiver:
    """An HTTP endpoint on ``127.0.0.1`` (port 0) keeping every delivery; stop it with
    :meth:`close`."""

    def __init__(self) -> None:
        self.secret = "whsec_" + secrets.token_hex(16)
        self.deliveries: list[Delivery] = []
        self._lock = threading.Lock()
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(min(length, _MAX_BODY))
                try:
                    verify(body, self.headers.get(SIGNATURE_HEADER, ""), receiver.secret)
                    verified = True
                except WebhookSignatureError:
                    verified = False
                delivery = Delivery(self.headers.get("Tavkit-Event-Id", ""), body, verified)
                with receiver._lock:
                    receiver.deliveries.append(delivery)
                self.send_response(204 if verified else 400)
                self.end_headers()

            def log_message(self, format: str, *args: Any) -> None:
                pass  # a test's output is no place for an access log

        self._http = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._http.daemon_threads = True
        self._thread = threading.Thread(
            target=self._http.serve_forever,
            kwargs={"poll_interval": 0.05},  # how long close() may wait for the loop to notice
            name="tavkit-webhook-receiver",
            daemon=True,
        )
        self._thread.start()

    @property
    def url(self) -> str:
        """Where the server is told to send its webhooks."""
        return f"http://127.0.0.1:{self._http.server_address[1]}{_PATH}"

    @property
    def events(self) -> list[dict[str, Any]]:
        """The verified events, each event id once, in arrival order."""
        seen: set[str] = set()
        found = []
        with self._lock:
            deliveries = list(self.deliveries)
        for delivery in deliveries:
            if delivery.verified and delivery.event_id not in seen:
                seen.add(delivery.event_id)
                found.append(delivery.event())
        return found

    def of_type(self, event_type: str) -> list[dict[str, Any]]:
        """The verified events of one ``type`` (``member.joined``, ``recording.ready``...)."""
        return [event for event in self.events if event["type"] == event_type]

    async def wait_for(
        self, event_type: str, *, count: int = 1, within: float = TIMEOUT, **data: Any
    ) -> list[dict[str, Any]]:
        """Wait until ``count`` events of ``event_type`` whose ``data`` has these items came."""

        def matching() -> list[dict[str, Any]]:
            return [
                event
                for event in self.of_type(event_type)
                if all(event.get("data", {}).get(k) == v for k, v in data.items())
            ]

        await until(lambda: len(matching()) >= count, f"{count} {event_type} webhook(s)", within)
        return matching()

    def close(self) -> None:
        """Stop serving."""
        self._http.shutdown()
        self._http.server_close()
        self._thread.join(10)
