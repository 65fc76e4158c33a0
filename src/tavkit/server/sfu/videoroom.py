"""The VideoRoom's messages as typed values: what tavkit maps to membership.

Janus 1.x's VideoRoom (multistream) tells a publisher's handle who publishes
(``joined``, then ``publishers`` as others start), who stops (``unpublished``) and who
leaves (``leaving``); Janus's core tells each handle about its PeerConnection
(``webrtcup``, ``media``, ``hangup``, ``detached``). :func:`parse_event` reads one
message into one of the frozen dataclasses below (:data:`Event`), so the rest of tavkit
never reads Janus's JSON. A shared screen is a video stream its publisher described
as :data:`SCREEN`. Ids are strings: the rooms use ``string_ids`` (tavkit's room
and user ids), see :mod:`tavkit.server.sfu.config`.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Final

__all__ = [
    "SCREEN",
    "Detached",
    "Event",
    "FeedStream",
    "Hangup",
    "Joined",
    "Leaving",
    "MediaState",
    "Publisher",
    "Publishers",
    "Stream",
    "Subscription",
    "Unpublished",
    "WebRTCUp",
    "parse_event",
]

SCREEN: Final = "screen"
"""The description tavkit gives a publisher's shared-screen stream (``publish``'s
``descriptions``); Janus repeats it to every subscriber (``feed_description``), so any
replica tells a screen from a camera."""


@dataclass(frozen=True)
class Stream:
    """One media stream a publisher sends (Janus 1.x's multistream ``streams`` entry)."""

    mid: str
    type: str
    """``audio``, ``video`` or ``data``."""
    codec: str | None = None
    description: str | None = None
    """What the publisher said the stream is (``publish``'s ``descriptions``): tavkit
    says ``screen`` for a shared screen (:data:`SCREEN`)."""

    @classmethod
    def parse(cls, data: Mapping[str, Any]) -> Stream:
        """Read a ``streams`` entry; unknown keys are ignored."""
        codec = data.get("codec")
        description = data.get("description")
        return cls(
            mid=str(data.get("mid", "")),
            type=str(data.get("type", "")),
            codec=None if codec is None else str(codec),
            description=None if description is None else str(description),
        )


@dataclass(frozen=True)
class Publisher:
    """A participant publishing in a room, as the VideoRoom lists it."""

    id: str
    display: str | None
    streams: tuple[Stream, ...] = ()

    @classmethod
    def parse(cls, data: Mapping[str, Any]) -> Publisher:
        """Read a ``publishers`` entry (ids are strings: the rooms use ``string_ids``)."""
        display = data.get("display")
        return cls(
            id=str(data["id"]),
            display=None if display is None else str(display),
            streams=tuple(
                Stream.parse(s) for s in data.get("streams", ()) if not s.get("disabled")
            ),
        )


@dataclass(frozen=True)
class FeedStream:
    """One stream of a subscription: which publisher's stream arrives on ``mid``."""

    mid: str
    """The m-line's mid in the subscription's SDP (what aiortc's transceiver says)."""
    feed: str
    """The publisher's id (tavkit's userId)."""
    type: str
    feed_mid: str | None = None
    """The mid of the stream in the publisher's own PeerConnection."""
    description: str | None = None
    """The publisher's description of the stream (:data:`SCREEN` for a shared screen)."""

    @classmethod
    def parse(cls, data: Mapping[str, Any]) -> FeedStream:
        """Read an ``attached`` event's ``streams`` entry."""
        feed_mid = data.get("feed_mid")
        description = data.get("feed_description")
        return cls(
            mid=str(data.get("mid", "")),
            feed=str(data.get("feed_id", "")),
            type=str(data.get("type", "")),
            feed_mid=None if feed_mid is None else str(feed_mid),
            description=None if description is None else str(description),
        )

    @property
    def screen(self) -> bool:
        """Whether this is the publisher's shared screen (a video it described so)."""
        return self.type == "video" and self.description == SCREEN


@dataclass(frozen=True)
class Subscription:
    """Janus's answer to a subscription: its SDP offer and which feed is on which mid."""

    room: str
    offer: str
    streams: tuple[FeedStream, ...]

    def feed_of(self, mid: str | None) -> str | None:
        """The publisher whose stream arrives on ``mid`` (None if no such stream)."""
        return next((s.feed for s in self.streams if s.mid == mid), None)


@dataclass(frozen=True)
class Joined:
    """This handle joined ``room`` as publisher ``id``; ``publishers`` were already there."""

    room: str
    id: str
    private_id: int | None
    publishers: tuple[Publisher, ...]


@dataclass(frozen=True)
class Publishers:
    """Publishers started publishing in the room (or changed what they publish)."""

    room: str
    publishers: tuple[Publisher, ...]


@dataclass(frozen=True)
class Unpublished:
    """Publisher ``id`` stopped publishing (it may still be in the room)."""

    room: str
    id: str


@dataclass(frozen=True)
class Leaving:
    """Participant ``id`` left the room (or, for a subscriber, its feed went away)."""

    room: str
    id: str


@dataclass(frozen=True)
class WebRTCUp:
    """This handle's PeerConnection is up (ICE and DTLS done)."""


@dataclass(frozen=True)
class MediaState:
    """Janus started or stopped receiving ``type`` on ``mid`` (after ``no_media_timer``)."""

    type: str
    mid: str | None
    receiving: bool


@dataclass(frozen=True)
class Hangup:
    """This handle's PeerConnection is gone; ``reason`` is Janus's words."""

    reason: str


@dataclass(frozen=True)
class Detached:
    """The handle is gone: detached, its session timed out, or the socket closed."""

    reason: str


Event = Joined | Publishers | Unpublished | Leaving | WebRTCUp | MediaState | Hangup | Detached
"""What :meth:`VideoRoomHandle.next_event` returns."""


def parse_event(message: Mapping[str, Any]) -> Event | None:
    """The typed value of a Janus message addressed to a handle; None when it says nothing
    tavkit acts on (``slowlink``, a VideoRoom ``event`` that only confirms a request)."""
    kind = message.get("janus")
    if kind == "webrtcup":
        return WebRTCUp()
    if kind == "hangup":
        return Hangup(str(message.get("reason", "")))
    if kind == "detached":
        return Detached("detached")
    if kind == "media":
        mid = message.get("mid")
        return MediaState(
            type=str(message.get("type", "")),
            mid=None if mid is None else str(mid),
            receiving=bool(message.get("receiving")),
        )
    if kind != "event":
        return None
    data = message.get("plugindata", {}).get("data", {})
    room = str(data.get("room", ""))
    what = data.get("videoroom")
    if what == "joined":
        private_id = data.get("private_id")
        return Joined(
            room=room,
            id=str(data["id"]),
            private_id=private_id if isinstance(private_id, int) else None,
            publishers=tuple(Publisher.parse(p) for p in data.get("publishers", ())),
        )
    if "publishers" in data:
        return Publishers(room, tuple(Publisher.parse(p) for p in data["publishers"]))
    if "leaving" in data:
        return Leaving(room, str(data["leaving"]))
    if "unpublished" in data:
        return Unpublished(room, str(data["unpublished"]))
    return None
