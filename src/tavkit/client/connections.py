"""The client's aiortc peer connections as one typed view, mesh and SFU alike.

A mesh member holds one connection per other member; an SFU member holds two (one
publishing our tracks, one subscription carrying everyone else's). Code that looks at
media statistics (the quality reporter, tests, benchmarks, an operator's script) wants
them all without knowing the room's mode or reaching into the client's internals:
:meth:`tavkit.client.TAvKit.connections` returns a :class:`MediaConnection` for each.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Literal

from aiortc import RTCPeerConnection

__all__ = ["ConnectionRole", "MediaConnection", "sent_streams"]

ConnectionRole = Literal["mesh", "publish", "subscription"]
"""``mesh``: a link with one member; ``publish``/``subscription``: our two SFU connections."""


@dataclass(frozen=True)
class MediaConnection:
    """One open peer connection of the client and whose media it carries.

    A snapshot: the connection itself is live, but a mesh link that reconnects or a new
    SFU subscription is a new connection, so ask :meth:`TAvKit.connections` again.
    """

    role: ConnectionRole
    pc: RTCPeerConnection
    #: Whose media arrives on it: the linked member (mesh), every member of the
    #: subscription (SFU), nobody (our publish connection).
    user_ids: tuple[str, ...] = ()
    #: The subscription's number (the server's ``media-signal``), for ``media-layers``.
    subscription: int | None = None
    #: Which member's stream arrives on which mid (subscription only): mid -> userId.
    feeds: Mapping[str, str] = field(default_factory=dict)


async def sent_streams(connections: list[MediaConnection]) -> list[tuple[str, int]]:
    """Every stream that has sent RTP over ``connections``: ``(kind, packetsSent)``, sorted.

    A mesh member in a room of three sends each kind twice; an SFU member once, on its
    publish connection, whatever the room's size.
    """
    sent = []
    for connection in connections:
        for stat in (await connection.pc.getStats()).values():
            if getattr(stat, "type", "") == "outbound-rtp" and stat.packetsSent > 0:
                sent.append((str(stat.kind), int(stat.packetsSent)))
    return sorted(sent)
