"""ICE for aiortc peers: an explicit configuration, and gathering on chosen addresses.

Two things aiortc does by default that a self-hosted call must not:

* With no ``iceServers`` it falls back to Google's public STUN server. We always pass
  an explicit :class:`~aiortc.RTCConfiguration` built from the ``iceServers`` of the
  room's ``enter`` response, which is empty unless the operator configured TURN.
* aioice gathers host candidates on every interface *except* ``127.0.0.1``
  (``aioice.ice.get_host_addresses`` drops it), so two peers that can only reach
  each other over loopback - every test, a laptop with no network - get no common
  candidate pair and sit in "checking" forever without an error.

:func:`gather_on` fixes the second for one peer connection at a time: before each
``setLocalDescription`` it replaces, *on that connection's own aioice objects only*,
the step that picks the host addresses, so they gather on exactly the addresses the
caller named (loopback included). Nothing global is patched: other peer connections
in the same process, and other libraries using aioice, are untouched. It relies on
aioice 0.9+'s ``Connection`` internals (checked by :func:`check_supported`).

:func:`enlarge_receive_buffers` gives a connection's UDP sockets a larger kernel
receive buffer, for a connection that carries many streams at once (an SFU
subscription) where a busy event loop would otherwise lose packets in bulk.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import ipaddress
import socket
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from aioice import TransportPolicy
from aiortc import RTCConfiguration, RTCIceServer, RTCPeerConnection
from aiortc.rtcconfiguration import RTCBundlePolicy, RTCIceTransportPolicy

__all__ = [
    "check_supported",
    "configuration",
    "enlarge_receive_buffers",
    "gather_on",
    "validate_addresses",
]

# Attribute we set on an aioice Connection once its gathering is redirected.
_MARK = "_tavkit_host_addresses"
_REQUIRED = (
    "_components",
    "_local_candidates",
    "_local_candidates_start",
    "_local_candidates_end",
    "get_component_candidates",
)


def configuration(
    ice_servers: Iterable[Mapping[str, Any]] = (), transport_policy: str = "all"
) -> RTCConfiguration:
    """The peer-connection configuration for the servers an ``enter`` response lists.

    Always an explicit list, so aiortc never adds its default public STUN server;
    ``max-bundle`` so one ICE transport carries audio and video (what browsers do),
    which also means one gathering per peer instead of one per track.
    """
    servers = []
    for server in ice_servers:
        urls = server.get("urls")
        if isinstance(urls, str):
            urls = [urls]
        if not isinstance(urls, list) or not urls:
            raise ValueError(f"an ICE server needs urls: {server!r}")
        servers.append(
            RTCIceServer(
                urls=[str(u) for u in urls],
                username=server.get("username"),
                credential=server.get("credential"),
            )
        )
    policy = RTCIceTransportPolicy.ALL
    if transport_policy == "relay":
        policy = RTCIceTransportPolicy.RELAY
    return RTCConfiguration(
        iceServers=servers, iceTransportPolicy=policy, bundlePolicy=RTCBundlePolicy.MAX_BUNDLE
    )


def validate_addresses(addresses: Sequence[str]) -> tuple[str, ...]:
    """Check that ``addresses`` are literal IP addresses; return them as a tuple.

    Host names are refused: a candidate must carry the address the peer will send to.
    """
    if isinstance(addresses, str):
        raise TypeError("host_addresses must be a sequence of addresses, not one string")
    checked = []
    for address in addresses:
        try:
            checked.append(str(ipaddress.ip_address(address)))
        except ValueError:
            raise ValueError(f"not an IP address: {address!r}") from None
    if not checked:
        raise ValueError("host_addresses must name at least one address")
    return tuple(checked)


def check_supported() -> None:
    """Fail early, with a clear message, if this aioice lacks what :func:`gather_on` uses."""
    from aioice import Connection

    probe = Connection(ice_controlling=False)
    missing = [name for name in _REQUIRED if not hasattr(probe, name)]
    if missing:
        raise RuntimeError(
            "host_addresses needs aioice's Connection internals; missing: " + ", ".join(missing)
        )


def gather_on(pc: RTCPeerConnection, addresses: Sequence[str]) -> None:
    """Make ``pc``'s not-yet-gathered ICE transports gather host candidates on ``addresses``.

    Call it after adding tracks or applying a remote description (which create the
    transports) and before ``setLocalDescription`` (which gathers). Idempotent.
    STUN and TURN candidates are still gathered from the configured servers.
    """
    for transceiver in pc.getTransceivers():
        gatherer = transceiver.sender.transport.transport.iceGatherer
        connection = gatherer._connection
        if gatherer.state != "new" or getattr(connection, _MARK, None) is not None:
            continue
        setattr(connection, _MARK, tuple(addresses))
        # An instance attribute shadows the method for this one connection only.
        setattr(  # noqa: B010
            connection,
            "gather_candidates",
            functools.partial(_gather_candidates, connection, tuple(addresses)),
        )


async def _gather_candidates(connection: Any, addresses: tuple[str, ...]) -> None:
    """aioice's ``Connection.gather_candidates`` with the host addresses given, not discovered."""
    if connection._local_candidates_start:
        return
    connection._local_candidates_start = True
    # The relay policy forbids host candidates (RFC 9429 section 3.5.3), as in aioice.
    relay_only = getattr(connection, "_transport_policy", None) == TransportPolicy.RELAY
    hosts = [] if relay_only else list(addresses)
    results = await asyncio.gather(
        *(
            connection.get_component_candidates(component=component, addresses=hosts)
            for component in sorted(connection._components)
        )
    )
    for candidates in results:
        connection._local_candidates += candidates
    connection._local_candidates_end = True


def enlarge_receive_buffers(pc: RTCPeerConnection, size: int) -> int:
    """Ask for a ``size``-byte kernel receive buffer on each socket ``pc`` gathered on.

    aioice leaves its sockets at the system default (``net.core.rmem_default``, about
    200 KB): a connection carrying ten streams fills that within half a second of an
    event loop too busy to read, and the kernel then drops packets in bulk, more than
    NACKs can repair. The kernel caps ``size`` at ``net.core.rmem_max`` without an
    error. Call it after ``setLocalDescription`` (which gathers, so the sockets exist).
    Returns how many sockets were changed.
    """
    changed = 0
    connections = {
        id(c): c
        for c in (
            t.receiver.transport.transport.iceGatherer._connection for t in pc.getTransceivers()
        )
    }
    for connection in connections.values():
        for protocol in getattr(connection, "_protocols", ()):
            transport = getattr(protocol, "transport", None)
            sock = transport.get_extra_info("socket") if transport is not None else None
            if sock is None:
                continue
            with contextlib.suppress(OSError):
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, size)
                changed += 1
    return changed
