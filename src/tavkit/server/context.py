"""What request handlers and the signaling socket need, in one object: :class:`ServerContext`.

The app's lifespan (:func:`tavkit.server.app.create_app`) builds every service (store
opened and migrated, bus, rooms, messages, logs, recordings, socket registry), puts
the context on the app, and tears it all down. Handlers reach it one way only:
:func:`context_of` for a request or a websocket; no service hangs off the app's
state on its own.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from tavkit.errors import ServerCode, ServerError
from tavkit.server.drain import Drain
from tavkit.server.signaling.registry import SocketRegistry
from tavkit.server.signaling.shedding import LoopLag

if TYPE_CHECKING:
    from tavkit.server.bus import Bus
    from tavkit.server.calls.service import CallService
    from tavkit.server.calls.socket import UserConnection
    from tavkit.server.im.service import MessageService
    from tavkit.server.logs.service import LogService
    from tavkit.server.metrics import Metrics
    from tavkit.server.ratelimit import RateLimits
    from tavkit.server.recording.service import RecordingService
    from tavkit.server.rooms.service import RoomService
    from tavkit.server.settings import Settings
    from tavkit.server.sfu.bridge import SfuBridge
    from tavkit.server.sfu.modes import MediaModes
    from tavkit.server.signaling.connection import SignalingConnection
    from tavkit.server.store.db import Store
    from tavkit.server.webhooks import Dispatcher

__all__ = ["ServerContext", "context_of"]


@dataclass
class ServerContext:
    """The running server's shared parts (see ``docs/server-internals.md``)."""

    settings: Settings
    store: Store
    bus: Bus
    rooms: RoomService
    messages: MessageService
    logs: LogService
    recordings: RecordingService
    sockets: SocketRegistry[SignalingConnection]
    metrics: Metrics | None
    limits: RateLimits
    """The REST API's token buckets (:mod:`tavkit.server.ratelimit`)."""
    calls: CallService
    """Calls: ringing, answers, records (:mod:`tavkit.server.calls.service`)."""
    media_modes: MediaModes
    """Each session's media mode, and ``auto``'s switches (:mod:`tavkit.server.sfu.modes`)."""
    socket_secret: bytes = field(repr=False)
    """The data directory's secret for socket tokens (:mod:`tavkit.server.signaling.tokens`)."""
    drain: Drain = field(default_factory=Drain)
    """Whether this replica is draining (:mod:`tavkit.server.drain`)."""
    loop_lag: LoopLag = field(default_factory=LoopLag)
    """Whether the event loop is behind, so signals are shed (:mod:`~.signaling.shedding`)."""
    user_sockets: SocketRegistry[UserConnection] = field(default_factory=SocketRegistry)
    """This process's user sockets (:mod:`tavkit.server.calls.socket`), for the drain."""
    webhooks: Dispatcher | None = None
    """The webhook dispatcher (:mod:`tavkit.server.webhooks`); None outside a lifespan."""
    sfu: SfuBridge | None = None
    """Janus, when any room may go through it (media mode ``sfu`` or ``auto``, the server's
    or an app's: :mod:`tavkit.server.sfu.bridge`); None when every room is a mesh."""


def context_of(connection: Any) -> ServerContext:
    """The :class:`ServerContext` of the app serving ``connection`` (a request or websocket).

    Server 10000 when the app's lifespan has not run (a host that mounted the app
    without running its lifespan), rather than an AttributeError deep in a handler.
    """
    ctx = getattr(connection.app.state, "tavkit", None)
    if not isinstance(ctx, ServerContext):
        raise ServerError(ServerCode.INTERNAL, "the tavkit server has not started (lifespan)")
    return ctx
