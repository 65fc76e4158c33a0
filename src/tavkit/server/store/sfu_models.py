"""Where each SFU session's VideoRoom room is: one row per session placed on a Janus.

:class:`SfuRoomRow` is written by :mod:`tavkit.server.sfu.placement` when a session's
first member's socket opens in SFU mode, moved when its Janus dies and its members go
to another, and deleted when the room is destroyed. Every replica reads it, so they
agree on which Janus holds a session's room, and the open memberships of the rows'
sessions are each Janus's load. A row whose session is closed is a room to destroy
(a replica that died mid-call left it): the placement's sweep destroys it and deletes
the row, so Janus keeps no ghost rooms.

No VideoRoom secret is stored: a room's secret is derived from the Janus API secret
and the session's UUID (:func:`tavkit.server.sfu.placement.room_secret`), so a
replica can destroy a room it did not make, and the database holds no secret.
"""

from __future__ import annotations

import uuid

from sqlalchemy import Double, ForeignKey, Index, String, Uuid
from sqlalchemy.orm import Mapped, mapped_column

from tavkit.server.store.models import Base

__all__ = ["SfuRoomRow"]


class SfuRoomRow(Base):
    """One session's VideoRoom room: on which Janus (its API URL), since when."""

    __tablename__ = "sfu_rooms"

    session_id: Mapped[uuid.UUID] = mapped_column(
        Uuid, ForeignKey("room_sessions.id"), primary_key=True
    )
    """The tavkit session; its UUID is also the VideoRoom room's id."""
    janus_url: Mapped[str] = mapped_column(String(255))
    """The Janus (one of ``Settings.janus_urls``) that holds the room."""
    placed_at: Mapped[float] = mapped_column(Double)
    """When the room was made there (made again there, after a move)."""

    __table_args__ = (Index("ix_sfu_rooms_janus", "janus_url"),)
