"""What an SDP asks to send and receive, against the privateMapKey's privilege bits.

A member's privileges decide which media it may publish and receive (TRTC's bits:
4 send audio, 8 receive audio, 16 send video, 32 receive video, 64 send a
sub-stream, 128 receive one). The server reads every relayed offer and answer with
:func:`refusal`; the clients use :func:`allowed_direction` to set their transceivers
so that a well-behaved member never trips the check.

Each ``m=`` section has a direction (``a=sendrecv``, the default, ``sendonly``,
``recvonly`` or ``inactive``), always from the point of view of the member who wrote
the SDP, in an offer and in an answer alike. A section with port 0 is rejected or
stopped and carries nothing. ``application`` sections (data channels) carry no
media and need no bit. Video sections are the camera (bits 16/32) unless the section
is marked as a sub-stream (``a=content:slides``, RFC 4796, what screen sharing
uses), which needs bits 64/128.

Browsers and aiortc neither write nor keep that attribute, so the clients add it to
every description they send (:func:`mark_slides`) on the sections they know to be a
screen: their own, and those the other side's descriptions marked
(:func:`slides_mids`). ``web/slides.js`` is the browser's copy.

Pure functions, no I/O.
"""

from __future__ import annotations

from collections.abc import Collection
from dataclasses import dataclass
from typing import Final, Literal

from tavkit.auth.grants import Privilege

__all__ = [
    "Direction",
    "MediaSection",
    "allowed_direction",
    "mark_slides",
    "may_send",
    "media_sections",
    "refusal",
    "slides_mids",
]

Direction = Literal["sendrecv", "sendonly", "recvonly", "inactive"]
_DIRECTIONS: Final[frozenset[str]] = frozenset({"sendrecv", "sendonly", "recvonly", "inactive"})

_BITS: Final[dict[str, tuple[Privilege, Privilege]]] = {
    "audio": (Privilege.SEND_AUDIO, Privilege.RECV_AUDIO),
    "video": (Privilege.SEND_VIDEO, Privilege.RECV_VIDEO),
    "sub": (Privilege.SEND_SUB, Privilege.RECV_SUB),
}
"""Media kind -> (send bit, receive bit)."""


@dataclass(frozen=True, slots=True)
class MediaSection:
    """One ``m=`` section as far as privileges care."""

    kind: str
    """``audio``, ``video``, ``sub`` (a video sub-stream), or another media type."""
    direction: Direction
    active: bool
    """False for a section with port 0 (rejected or stopped)."""

    @property
    def sends(self) -> bool:
        """Whether the SDP's author would send media in this section."""
        return self.active and self.direction in ("sendrecv", "sendonly")

    @property
    def receives(self) -> bool:
        """Whether the SDP's author would receive media in this section."""
        return self.active and self.direction in ("sendrecv", "recvonly")


def media_sections(sdp: str, screens: Collection[str] = ()) -> list[MediaSection]:
    """The ``m=`` sections of ``sdp`` with their effective direction.

    A session-level direction attribute applies to sections that set none. A video
    section is the sub-stream when it is marked ``a=content:slides`` or its mid is in
    ``screens`` (an answer's sections for the offer's screens, marked or not).
    """
    session_direction: Direction = "sendrecv"
    sections: list[MediaSection] = []
    kind: str | None = None
    active = True
    direction: Direction | None = None
    content_sub = False
    mid: str | None = None

    def close() -> None:
        if kind is None:
            return
        effective = direction or session_direction
        sub = content_sub or (mid is not None and mid in screens)
        actual = "sub" if kind == "video" and sub else kind
        sections.append(MediaSection(actual, effective, active))

    for raw in sdp.splitlines():
        line = raw.strip()
        if line.startswith("m="):
            close()
            fields = line[2:].split()
            kind = fields[0] if fields else ""
            active = len(fields) < 2 or fields[1].split("/")[0] != "0"
            direction = None
            content_sub = False
            mid = None
        elif line.startswith("a=mid:"):
            mid = line[len("a=mid:") :].strip()
        elif line.startswith("a="):
            attribute = line[2:]
            if attribute in _DIRECTIONS:
                value: Direction = attribute  # type: ignore[assignment]
                if kind is None:
                    session_direction = value
                else:
                    direction = value
            elif kind == "video" and attribute.startswith("content:"):
                content_sub = "slides" in attribute[len("content:") :].split(",")
    close()
    return sections


def refusal(sdp: str, privileges: int, screens: Collection[str] = ()) -> str | None:
    """Why ``sdp`` exceeds ``privileges`` (the first section that does), or None if it fits.

    The message names the missing bit, e.g. ``"m=video would send without
    SEND_VIDEO (16)"``, so the refusal the member gets says exactly what to fix.
    ``screens``: mids to read as screens whatever ``sdp`` says (:func:`media_sections`),
    so an answer that drops the offer's mark is still checked with bits 64/128.
    """
    for index, section in enumerate(media_sections(sdp, screens)):
        bits = _BITS.get(section.kind)
        if bits is None:
            continue
        send_bit, receive_bit = bits
        if section.sends and not privileges & send_bit:
            return (
                f"m-line {index} ({section.kind}) would send without "
                f"{send_bit.name} ({int(send_bit)})"
            )
        if section.receives and not privileges & receive_bit:
            return (
                f"m-line {index} ({section.kind}) would receive without "
                f"{receive_bit.name} ({int(receive_bit)})"
            )
    return None


def may_send(kind: str, privileges: int) -> bool:
    """Whether ``privileges`` allow sending ``kind`` (``audio``, ``video``, ``sub``).

    The one table of which bit sends what, for the clients' publishers as for the
    server's SDP check.
    """
    bits = _BITS.get(kind)
    return bits is not None and bool(privileges & bits[0])


def allowed_direction(kind: str, privileges: int, *, sending: bool = True) -> Direction:
    """The widest direction ``privileges`` allow for ``kind`` (``audio``, ``video``, ``sub``).

    ``sending=False`` leaves out sending even when allowed (nothing to publish).
    """
    bits = _BITS.get(kind)
    if bits is None:
        return "sendrecv" if sending else "recvonly"
    send = sending and bool(privileges & bits[0])
    receive = bool(privileges & bits[1])
    if send and receive:
        return "sendrecv"
    if send:
        return "sendonly"
    if receive:
        return "recvonly"
    return "inactive"


def slides_mids(sdp: str) -> set[str]:
    """The mids of the video sections of ``sdp`` marked ``a=content:slides``."""
    mids: set[str] = set()
    kind: str | None = None
    mid: str | None = None
    slides = False
    for raw in [*sdp.splitlines(), "m=end"]:
        line = raw.strip()
        if line.startswith("m="):
            if kind == "video" and slides and mid is not None:
                mids.add(mid)
            kind, mid, slides = (line[2:].split() or [""])[0], None, False
        elif line.startswith("a=mid:"):
            mid = line[len("a=mid:") :].strip()
        elif line.startswith("a=content:"):
            slides = slides or "slides" in line[len("a=content:") :].split(",")
    return mids


def mark_slides(sdp: str, mids: set[str]) -> str:
    """``sdp`` with ``a=content:slides`` after the ``a=mid`` of each video section in ``mids``.

    A section already marked is left as it is.
    """
    if not mids:
        return sdp
    eol = "\r\n" if "\r\n" in sdp else "\n"
    marked = slides_mids(sdp)
    out: list[str] = []
    kind: str | None = None
    for line in sdp.split(eol):
        out.append(line)
        if line.startswith("m="):
            kind = (line[2:].split() or [""])[0]
        elif kind == "video" and line.startswith("a=mid:"):
            mid = line[len("a=mid:") :].strip()
            if mid in mids and mid not in marked:
                out.append("a=content:slides")
    return eol.join(out)
