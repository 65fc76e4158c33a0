"""A room's identity: a number 1..4294967295 or a TRTC ``strRoomId``, never confused.

TRTC has two kinds of room, and ``123`` and ``"123"`` are two different rooms. tavkit
carries the kind in the value's own type everywhere, so nothing has to remember it
beside the value:

* in Python a :data:`RoomId` is an ``int`` (numeric room) or a ``str`` (string room);
  ``123 != "123"`` and they hash apart, so dict keys and comparisons keep them apart;
* in JSON (REST bodies, socket tokens, webhook payloads) ``roomId`` is a JSON number
  or a JSON string, the same distinction;
* in URLs numeric rooms live under ``/v1/rooms/{roomId}`` and string rooms under
  ``/v1/str-rooms/{strRoomId}`` (percent-encoded), see :func:`room_path`;
* in the store a pair of columns, ``room_id`` (0 for a string room) and ``room_str``
  (``""`` for a numeric room), see :func:`room_columns` and :func:`room_from_columns`,
  the same layout as the privateMapKey's userbuf (``roomid`` 0 when ``ver`` is 1).

Parsing is strict: a ``bool`` is not a room, a float is not a room, a string room
outside TRTC's alphabet or over 64 bytes is refused with server 10004.
"""

from __future__ import annotations

import json
import re
from typing import Final
from urllib.parse import quote

from tavkit.errors import ServerCode, ServerError

__all__ = [
    "ROOM_ID_MAX",
    "STR_ROOM_ID_RE",
    "RoomId",
    "parse_room_id",
    "parse_str_room_id",
    "room_columns",
    "room_from_columns",
    "room_label",
    "room_path",
]

RoomId = int | str
"""A room: ``int`` for a numeric room (1..4294967295), ``str`` for a string room."""

ROOM_ID_MAX: Final = 0xFFFF_FFFF
"""The largest numeric roomId (a u32, as in the privateMapKey)."""

STR_ROOM_ID_RE: Final = re.compile(r"[A-Za-z0-9_\-+=.:@!#$%&()*;<>?\[\]^{}|~]{1,64}")
"""TRTC's ``strRoomId``: 1-64 bytes of ASCII letters, digits and
``_-+=.:@!#$%&()*;<>?[]^{}|~`` (use ``fullmatch``; every allowed character is one byte)."""


def parse_str_room_id(value: object, field: str = "strRoomId") -> str:
    """``value`` as a string room id, or server 10004 naming ``field`` and the rule."""
    if not isinstance(value, str):
        raise _invalid(field, f"must be a string, not {type(value).__name__}")
    if not value:
        raise _invalid(field, "must not be empty")
    if len(value.encode("utf-8", "surrogatepass")) > 64:
        raise _invalid(field, "is longer than 64 bytes")
    if not STR_ROOM_ID_RE.fullmatch(value):
        raise _invalid(
            field,
            "may hold only letters, digits and _-+=.:@!#$%&()*;<>?[]^{}|~",
        )
    return value


def parse_room_id(value: object, field: str = "roomId") -> RoomId:
    """A JSON ``roomId`` (a number 1..4294967295, or a string room id) as a :data:`RoomId`.

    The JSON type decides the kind: ``123`` is the numeric room, ``"123"`` the string
    room with those digits. Anything else is server 10004.
    """
    if isinstance(value, str):
        return parse_str_room_id(value, field)
    if isinstance(value, bool) or not isinstance(value, int):
        raise _invalid(field, f"must be an integer or a string, not {type(value).__name__}")
    if not 1 <= value <= ROOM_ID_MAX:
        raise _invalid(field, f"must be in 1..{ROOM_ID_MAX}, not {value}")
    return value


def room_label(room: RoomId) -> str:
    """The room for messages and logs: ``1234`` or ``"abc"`` (quoted, so kinds differ)."""
    return json.dumps(room) if isinstance(room, str) else str(room)


def room_path(room: RoomId) -> str:
    """The room's REST path below ``/v1``: ``rooms/1234`` or ``str-rooms/<percent-encoded>``."""
    if isinstance(room, str):
        return f"str-rooms/{quote(room, safe='')}"
    return f"rooms/{room}"


def room_columns(room: RoomId) -> tuple[int, str]:
    """The store's ``(room_id, room_str)`` for ``room``: ``(n, "")`` or ``(0, s)``."""
    return (0, room) if isinstance(room, str) else (room, "")


def room_from_columns(room_id: int, room_str: str) -> RoomId:
    """The room a stored ``(room_id, room_str)`` pair names (inverse of :func:`room_columns`)."""
    return room_str if room_str else room_id


def _invalid(field: str, why: str) -> ServerError:
    return ServerError(ServerCode.INVALID_PARAMETER, f"{field} {why}")
