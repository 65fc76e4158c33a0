"""Security headers on every HTTP response, as one pure-ASGI middleware.

Every answer the server gives can end up in a browser: the API's JSON (socket tokens,
who was in which call), the demo page and the dashboard (which keep credentials in
``sessionStorage``), the web component's files, recordings. So each gets:

==============================  ===========================================================
header                          why
==============================  ===========================================================
``X-Content-Type-Options``      ``nosniff``: a JSON answer or an uploaded-looking download is
                                never guessed into HTML or script
``Referrer-Policy``             ``no-referrer``: page URLs (the demo's fragments) never
                                leak to another site
``X-Frame-Options``,            ``DENY`` / ``frame-ancestors 'none'``: no page of ours runs
``Content-Security-Policy``     inside another site's frame (a camera prompt is a
                                clickjacking target); anything that is not HTML also gets
                                ``default-src 'none'``, so it can never run as a document
``Cache-Control``               ``no-store`` on JSON and HTML: answers carry tokens and
                                personal data; the component's static files stay cacheable
==============================  ===========================================================

:class:`ReplicaHeaderMiddleware` adds ``X-Tavkit-Replica`` (``Settings.replica_name``) to
every response and every WebSocket handshake: behind a load balancer a client (or
``tavkit loadtest``) can tell which replica it reached.

A header the route set itself wins (the dashboard's stricter CSP, a download's
``Cache-Control``). The web component is loaded by other sites' pages as a script,
which none of these headers prevents; no ``Cross-Origin-Resource-Policy`` is sent
for that reason.
"""

from __future__ import annotations

from typing import Final

from starlette.types import ASGIApp, Message, Receive, Scope, Send

__all__ = [
    "REPLICA_HEADER",
    "ReplicaHeaderMiddleware",
    "SecurityHeadersMiddleware",
    "named_send",
    "replica_header",
]

_ALWAYS: Final = (
    (b"x-content-type-options", b"nosniff"),
    (b"referrer-policy", b"no-referrer"),
    (b"x-frame-options", b"DENY"),
)
_CSP_PAGE: Final = b"frame-ancestors 'none'"
_CSP_OTHER: Final = b"default-src 'none'; frame-ancestors 'none'"
_NO_STORE_TYPES: Final = (b"application/json", b"text/html")
REPLICA_HEADER: Final = "X-Tavkit-Replica"
"""The response header naming the replica that answered."""
_NAMED: Final = ("http.response.start", "websocket.accept")


class SecurityHeadersMiddleware:
    """Adds the module docstring's headers to every HTTP response that lacks them."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = with_security_headers(list(message.get("headers", ())))
                message = {**message, "headers": headers}
            await send(message)

        await self.app(scope, receive, send_with_headers)


def with_security_headers(headers: list[tuple[bytes, bytes]]) -> list[tuple[bytes, bytes]]:
    """``headers`` (ASGI's raw pairs) plus every security header they do not set."""
    present = {name.lower() for name, _ in headers}
    content_type = next((v for k, v in headers if k.lower() == b"content-type"), b"").lower()
    is_page = content_type.startswith(b"text/html")
    added = [(name, value) for name, value in _ALWAYS if name not in present]
    if b"content-security-policy" not in present:
        added.append((b"content-security-policy", _CSP_PAGE if is_page else _CSP_OTHER))
    if b"cache-control" not in present and content_type.startswith(_NO_STORE_TYPES):
        added.append((b"cache-control", b"no-store"))
    return [*headers, *added]


class ReplicaHeaderMiddleware:
    """Adds ``X-Tavkit-Replica: <replica>`` to every HTTP response and WebSocket accept."""

    def __init__(self, app: ASGIApp, replica: str) -> None:
        self.app = app
        self.header = replica_header(replica)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] not in ("http", "websocket"):
            await self.app(scope, receive, send)
            return
        await self.app(scope, receive, named_send(send, self.header))


def replica_header(replica: str) -> tuple[bytes, bytes]:
    """The raw ASGI header naming ``replica``."""
    return (REPLICA_HEADER.lower().encode(), replica.encode("ascii"))


def named_send(send: Send, header: tuple[bytes, bytes]) -> Send:
    """``send``, adding ``header`` to the response start or the socket accept."""

    async def send_named(message: Message) -> None:
        if message["type"] in _NAMED:
            message = {**message, "headers": [*message.get("headers", ()), header]}
        await send(message)

    return send_named
