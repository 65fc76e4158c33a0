"""The journal table: every webhook-worthy change, appended in the transaction that made it.

A :class:`JournalRow` is written by :mod:`tavkit.server.journal` just before its
transaction commits, so a change that rolls back leaves no row (the transactional
outbox). Rows are never updated. Two numbers order them:

* ``app_seq``, per app, from ``apps.last_event_seq``: the counter is bumped by the
  writing transaction and its row lock held until commit, so an app's numbers commit
  in order with no gaps, and a reader that has seen ``n`` has seen everything below;
* ``session_seq``, per session, the order of the session's own events (taken under
  that same lock, so two replicas never give out the same number).
"""

from __future__ import annotations

import uuid

from sqlalchemy import BigInteger, Double, ForeignKey, Index, Integer, String, Text, Uuid
from sqlalchemy.orm import Mapped, mapped_column

from tavkit.server.store.models import ADDED_LATER, Base

__all__ = ["JournalRow"]

_SERIAL = BigInteger().with_variant(Integer(), "sqlite")


class JournalRow(Base):
    """One event of an app: what happened (``type``, ``data``), to which session, when."""

    __tablename__ = "journal"

    id: Mapped[int] = mapped_column(_SERIAL, primary_key=True, autoincrement=True)
    sdk_app_id: Mapped[int] = mapped_column(BigInteger, ForeignKey("apps.sdk_app_id"))
    app_seq: Mapped[int] = mapped_column(BigInteger)
    """The event's id on the wire: 1, 2, 3... within the app."""
    session_id: Mapped[uuid.UUID] = mapped_column(Uuid, ForeignKey("room_sessions.id"))
    session_seq: Mapped[int] = mapped_column(Integer)
    room_id: Mapped[int] = mapped_column(BigInteger)
    room_str: Mapped[str] = mapped_column(
        String(64), default="", server_default="", sort_order=ADDED_LATER
    )
    """With ``room_id``, the session's room (:func:`tavkit.protocol.room_from_columns`)."""
    type: Mapped[str] = mapped_column(String(32))
    at: Mapped[float] = mapped_column(Double)
    data: Mapped[str] = mapped_column(Text)
    """The event's ``data`` object as JSON text."""

    __table_args__ = (
        Index("uq_journal_app_seq", "sdk_app_id", "app_seq", unique=True),
        Index("uq_journal_session_seq", "session_id", "session_seq", unique=True),
        Index("ix_journal_app_at", "sdk_app_id", "at"),
    )
