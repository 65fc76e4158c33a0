"""Believe ``X-Forwarded-Proto`` / ``X-Forwarded-For`` only from the proxies we were told of.

Behind nginx, every request reaches the server from the proxy's address over plain
http, so without these headers the socket URL handed out by ``enter`` would be
``ws://`` on an ``https://`` page (which the browser refuses) and every member would
share the proxy's rate-limit bucket. Believed from anyone, they would let a client pick
its own address (a fresh rate-limit bucket per request) and its own scheme. So the
peer must be in ``--trusted-proxies`` (:attr:`Settings.trusted_proxies`); then:

* ``X-Forwarded-Proto`` (``http``/``https``, or ``ws``/``wss``) sets the scope's
  scheme, which :func:`tavkit.server.http.socket_url` turns into ``ws``/``wss``;
* ``X-Forwarded-For`` is read right to left, each hop appended by the proxy that
  received it, skipping hops that are themselves trusted proxies: the first untrusted
  address is the client. A chain of only trusted hops names its leftmost.

uvicorn has a middleware of its own for this, on by default for 127.0.0.1; the CLI and
the test server turn it off so that this one, configured by our settings, is the only
reader (one rule, documented in the README's server options).
"""

from __future__ import annotations

import ipaddress
from typing import Any, Final

from tavkit.server.settings import Network

__all__ = ["ProxyHeadersMiddleware", "client_from_chain"]

_SCHEMES: Final = {"http": "http", "https": "https", "ws": "http", "wss": "https"}
_MAX_HOPS: Final = 32
"""Hops of ``X-Forwarded-For`` looked at; a longer chain is a client's invention."""


def _address(text: str) -> ipaddress.IPv4Address | ipaddress.IPv6Address | None:
    """``text`` as an IP address (``[v6]:port`` and ``v4:port`` forms too), else None."""
    text = text.strip()
    if text.startswith("["):
        text = text[1 : text.find("]")] if "]" in text else text
    elif text.count(":") == 1:
        text = text.split(":", 1)[0]
    try:
        return ipaddress.ip_address(text)
    except ValueError:
        return None


def _trusted(address: str | None, proxies: tuple[Network, ...]) -> bool:
    parsed = _address(address) if address else None
    return parsed is not None and any(parsed in network for network in proxies)


def client_from_chain(chain: str, proxies: tuple[Network, ...]) -> str | None:
    """The client's address in an ``X-Forwarded-For`` chain; None when none is usable."""
    hops = [hop.strip() for hop in chain.split(",")][-_MAX_HOPS:]
    last: str | None = None
    for hop in reversed(hops):
        parsed = _address(hop)
        if parsed is None:
            return last  # garbage: stop at what the trusted hops vouched for
        last = str(parsed)
        if not any(parsed in network for network in proxies):
            return last
    return last


class ProxyHeadersMiddleware:
    """A pure-ASGI middleware applying the trusted proxies' headers to the scope."""

    def __init__(self, app: Any, proxies: tuple[Network, ...]) -> None:
        self.app = app
        self.proxies = proxies

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] in ("http", "websocket"):
            client = scope.get("client")
            if client and _trusted(client[0], self.proxies):
                scope = dict(scope)
                self._apply(scope)
        await self.app(scope, receive, send)

    def _apply(self, scope: dict[str, Any]) -> None:
        proto: str | None = None
        chain: list[str] = []
        for name, value in scope.get("headers", ()):
            if name == b"x-forwarded-proto":
                proto = value.decode("latin-1").split(",")[0].strip().lower()
            elif name == b"x-forwarded-for":
                chain.append(value.decode("latin-1"))
        if proto in _SCHEMES:
            scheme = _SCHEMES[proto]
            scope["scheme"] = (
                scheme.replace("http", "ws") if scope["type"] == "websocket" else scheme
            )
        if chain:
            client = client_from_chain(",".join(chain), self.proxies)
            if client is not None:
                scope["client"] = (client, 0)
