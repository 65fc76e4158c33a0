"""The ``media-signal`` frames: a member's SDP with the SFU, through the signaling socket.

In a room whose media goes through the SFU (``mediaMode: "sfu"`` in ``welcome`` and in
the ``enter`` answer, ``docs/protocol.md`` section 3b), a member has two peer
connections, each named by ``pc``:

* ``publish``: the member offers what it sends; the server answers for the SFU;
* ``subscribe``: the server offers what the member receives (every other publisher,
  one audio and one video m-line each, and one more video for a shared screen;
  ``streams`` says whose, and which video is a screen), numbered by
  ``subscription``; the member answers that number. A new number replaces the
  previous subscription (someone started or stopped publishing); ``streams`` empty and
  no ``data`` means nobody else publishes: close the subscription.

The member never sees the SFU's API nor its secrets: the server speaks for it. The
``data`` is the mesh ``signal``'s (:data:`~tavkit.protocol.messages.SignalData`).

A member that publishes simulcast (the browser: three layers) has every video stream
forwarded at the layer each receiver asks for with ``media-layers``
(:class:`MediaLayers`): a receiver knows how big it shows each member, the server does
not, so the receiver chooses and the server only checks and applies the choice.

A room of an ``auto`` app (``docs/sfu.md``) starts as a mesh and may become an SFU
room while it is live: :class:`MediaModeChanged` (``media-mode``) tells each member,
once the server has joined it to the SFU, that it should publish and subscribe there,
then close its mesh connections.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, ClassVar, Final, Literal

if TYPE_CHECKING:
    from tavkit.protocol.messages import SignalData

__all__ = [
    "MEDIA_LAYERS",
    "MEDIA_MODES",
    "MEDIA_PCS",
    "MediaLayer",
    "MediaLayers",
    "MediaMode",
    "MediaModeChanged",
    "MediaPc",
    "MediaSignalFrom",
    "MediaSignalTo",
    "MediaStream",
    "StreamLayer",
]

MediaMode = Literal["mesh", "sfu"]
MEDIA_MODES: Final[tuple[str, ...]] = ("mesh", "sfu")
"""``mesh``: members send to each other; ``sfu``: each member sends once, to the SFU."""
MediaPc = Literal["publish", "subscribe"]
MEDIA_PCS: Final[frozenset[str]] = frozenset({"publish", "subscribe"})
MediaLayer = Literal["high", "medium", "low", "paused"]
MEDIA_LAYERS: Final[tuple[str, ...]] = ("high", "medium", "low", "paused")
"""A simulcast publisher's full, half and quarter resolution, or nothing (``paused``).

A publisher that sends one layer (the Python client) sends it whatever is asked, but
``paused`` still stops it."""


@dataclass(frozen=True, slots=True)
class MediaStream:
    """One stream of a subscription: member ``user_id``'s ``kind`` arrives on ``mid``.

    ``screen``: this video is the member's shared screen, not its camera (a member
    publishes at most one of each). On the wire only when true, so a client that
    does not know the field reads a screen as a second video of the member's.
    """

    mid: str
    user_id: str
    kind: str
    screen: bool = False

    def to_wire(self) -> dict[str, Any]:
        """``{"mid", "userId", "kind"[, "screen": true]}``."""
        wire: dict[str, Any] = {"mid": self.mid, "userId": self.user_id, "kind": self.kind}
        if self.screen:
            wire["screen"] = True
        return wire


@dataclass(frozen=True, slots=True)
class MediaSignalTo:
    """A member's offer (``publish``) or answer (``subscribe``), or a candidate, for the SFU."""

    type: ClassVar[str] = "media-signal"
    pc: MediaPc
    data: SignalData
    subscription: int | None = None
    """With ``subscribe``: the number of the offer answered."""
    id: str | None = None

    def to_wire(self) -> dict[str, Any]:
        """The ``media-signal`` frame a client sends."""
        wire: dict[str, Any] = {"type": self.type, "pc": self.pc, "data": self.data.to_wire()}
        if self.subscription is not None:
            wire["subscription"] = self.subscription
        if self.id is not None:
            wire["id"] = self.id
        return wire


@dataclass(frozen=True, slots=True)
class MediaSignalFrom:
    """The SFU's answer (``publish``) or a subscription's offer (``subscribe``)."""

    type: ClassVar[str] = "media-signal"
    pc: MediaPc
    data: SignalData | None
    """None for a subscription with no streams (nobody else publishes) or, on ``publish``,
    "publish again": the room moved to another SFU (its Janus died), so the old
    publication is gone; a new subscription follows as the others publish there."""
    subscription: int | None = None
    streams: tuple[MediaStream, ...] = ()

    def to_wire(self) -> dict[str, Any]:
        """The ``media-signal`` frame a client receives."""
        wire: dict[str, Any] = {"type": self.type, "pc": self.pc}
        if self.data is not None:
            wire["data"] = self.data.to_wire()
        if self.subscription is not None:
            wire["subscription"] = self.subscription
            wire["streams"] = [s.to_wire() for s in self.streams]
        return wire


@dataclass(frozen=True, slots=True)
class StreamLayer:
    """The layer a member wants of the video that arrives on ``mid`` of its subscription."""

    mid: str
    layer: MediaLayer

    def to_wire(self) -> dict[str, Any]:
        """``{"mid", "layer"}``."""
        return {"mid": self.mid, "layer": self.layer}


@dataclass(frozen=True, slots=True)
class MediaLayers:
    """A member's choice of layer for video streams of its subscription number ``subscription``.

    Streams it does not name keep the layer they had (a new subscription starts every
    stream at ``high``). Only video streams of the member's own current subscription may
    be named; a choice for an older subscription is ignored.
    """

    type: ClassVar[str] = "media-layers"
    subscription: int
    layers: tuple[StreamLayer, ...]
    id: str | None = None

    def to_wire(self) -> dict[str, Any]:
        """The ``media-layers`` frame a client sends."""
        wire: dict[str, Any] = {
            "type": self.type,
            "subscription": self.subscription,
            "layers": [layer.to_wire() for layer in self.layers],
        }
        if self.id is not None:
            wire["id"] = self.id
        return wire


@dataclass(frozen=True, slots=True)
class MediaModeChanged:
    """The room's media goes another way from now on (``media-mode``): today only ``sfu``.

    Sent to each member of an ``auto`` room whose session has just grown past its
    threshold, after the server has joined that member to the SFU, so its ``media-signal
    publish`` is taken at once. The member publishes, answers its subscription, and only
    then closes its mesh connections: the others' media freezes for about one
    subscription's setup instead of going blank. A session never goes back to the mesh.
    """

    type: ClassVar[str] = "media-mode"
    media_mode: MediaMode

    def to_wire(self) -> dict[str, Any]:
        """``{"type": "media-mode", "mediaMode"}``."""
        return {"type": self.type, "mediaMode": self.media_mode}
