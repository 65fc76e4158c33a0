"""What request handlers and the signaling socket need, in one object on ``app.state.tavkit``.

The app's lifespan builds it (store opened and migrated, bus and room service
created, sweeper started) and tears it down; handlers reach it through
``request.app.state.tavkit`` or ``websocket.app.state.tavkit``.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from tavkit.server.bus import Bus
from tavkit.server.rooms import RoomService
from tavkit.server.settings import Settings
from tavkit.server.store.db import Store

__all__ = ["ServerContext"]


@dataclass
class ServerContext:
    """The running server's shared parts (see ``docs/server-internals.md``)."""

    settings: Settings
    store: Store
    rooms: RoomService
    bus: Bus
    socket_secret: bytes = field(repr=False)
    """The data directory's secret for socket tokens (:mod:`tavkit.server.tokens`)."""
