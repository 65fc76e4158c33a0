"""What a privateMapKey grants: the privilege bits, as named flags.

The TLS-sig v2 userbuf carries a 32-bit ``privilege_map``. Only the low eight bits
have a meaning; unknown bits are kept (``IntFlag`` with ``KEEP`` semantics) so a
key parsed and re-encoded is byte-identical. :data:`Privilege.ALL` and
:data:`Privilege.VIEWER` are aliases for the two combinations apps use most, and
:func:`parse_privilege` reads either a number or names, so the CLI can say
``--privilege VIEWER`` or ``--privilege enter,recv_audio``.
"""

from __future__ import annotations

import re
from enum import IntFlag

__all__ = ["PRIVILEGE_MAX", "Privilege", "parse_privilege", "privilege_names"]

PRIVILEGE_MAX = 0xFFFF_FFFF
"""The largest privilege map the userbuf's u32 field can hold."""


class Privilege(IntFlag):
    """The privilege bits of a privateMapKey, in the vendor's bit order."""

    CREATE = 1
    """Create the room (be the first to enter it)."""
    ENTER = 2
    """Enter the room."""
    SEND_AUDIO = 4
    """Publish audio."""
    RECV_AUDIO = 8
    """Receive the others' audio."""
    SEND_VIDEO = 16
    """Publish video."""
    RECV_VIDEO = 32
    """Receive the others' video."""
    SEND_SUB = 64
    """Publish a sub-stream (screen share)."""
    RECV_SUB = 128
    """Receive the others' sub-streams."""

    ALL = 255
    """Every privilege: what the vendor's tools grant by default."""
    VIEWER = ENTER | RECV_AUDIO | RECV_VIDEO
    """Enter and receive audio and video, publish nothing (42)."""


def privilege_names(privilege: int) -> list[str]:
    """Name each known bit set in ``privilege``, lowest first (``ALL`` is spelled out).

    Bits without a name are reported as ``"0x..."`` so nothing is hidden from a
    person reading an inspected key.
    """
    value = int(privilege)
    names = [flag.name for flag in Privilege if flag.name is not None and value & flag]
    unknown = value & ~int(Privilege.ALL)
    if unknown:
        names.append(f"0x{unknown:x}")
    return names


_SEPARATORS = re.compile(r"[\s,|+]+")


def parse_privilege(text: str) -> Privilege:
    """Read a privilege map written as a number (``255``, ``0xff``) or names (``enter,recv_audio``).

    Names are case-insensitive and may be joined by commas, ``|``, ``+`` or spaces;
    ``ALL`` and ``VIEWER`` are accepted. Raise ``ValueError`` for anything else,
    including numbers outside the u32 range.
    """
    stripped = text.strip()
    if not stripped:
        raise ValueError("empty privilege")
    try:
        value = int(stripped, 0)
    except ValueError:
        value = 0
        for word in _SEPARATORS.split(stripped):
            if not word:
                continue
            try:
                value |= Privilege[word.upper()]
            except KeyError:
                known = ", ".join(m for m in Privilege.__members__)
                raise ValueError(f"unknown privilege {word!r} (known: {known})") from None
    if not 0 <= value <= PRIVILEGE_MAX:
        raise ValueError(f"privilege {value} is outside 0..{PRIVILEGE_MAX}")
    return Privilege(value)
