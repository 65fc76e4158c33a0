"""The call records: a row per call and a row per callee, kept after the call ends.

A :class:`CallRow` is the call (who rang, in which room and session, its state, when
it was answered and ended, and why); a :class:`CalleeRow` is one callee's outcome.
Together they are the call history ``GET /v1/calls`` reads. Every change to them is
made by :mod:`tavkit.server.calls.service` in one transaction with its journal event.
"""

from __future__ import annotations

import uuid

from sqlalchemy import BigInteger, Double, ForeignKey, Index, Integer, String, Text, Uuid
from sqlalchemy.orm import Mapped, mapped_column

from tavkit.server.store.models import Base

__all__ = ["CallRow", "CalleeRow"]

_SERIAL = BigInteger().with_variant(Integer(), "sqlite")


class CallRow(Base):
    """One call: ringing from ``created_at`` to ``ring_until``, then answered or not."""

    __tablename__ = "calls"

    id: Mapped[uuid.UUID] = mapped_column(Uuid, primary_key=True)
    sdk_app_id: Mapped[int] = mapped_column(BigInteger, ForeignKey("apps.sdk_app_id"))
    room_id: Mapped[int] = mapped_column(BigInteger)
    session_id: Mapped[uuid.UUID] = mapped_column(Uuid, ForeignKey("room_sessions.id"))
    """The room's session the call rings into (opened by the call when none was open)."""
    caller: Mapped[str] = mapped_column(String(64))
    media: Mapped[str] = mapped_column(String(8))
    data: Mapped[str | None] = mapped_column(Text, default=None)
    """The caller's ``data`` as JSON text (None: none given)."""
    state: Mapped[str] = mapped_column(String(16))
    created_at: Mapped[float] = mapped_column(Double)
    ring_until: Mapped[float] = mapped_column(Double)
    answered_at: Mapped[float | None] = mapped_column(Double, default=None)
    """When the first callee accepted."""
    ended_at: Mapped[float | None] = mapped_column(Double, default=None)
    end_reason: Mapped[str | None] = mapped_column(String(16), default=None)

    __table_args__ = (
        Index("ix_calls_app_created", "sdk_app_id", "created_at"),
        Index("ix_calls_app_caller", "sdk_app_id", "caller", "created_at"),
        Index("ix_calls_state_ring", "state", "ring_until"),
        Index("ix_calls_session", "session_id"),
    )


class CalleeRow(Base):
    """One callee of a call and their outcome (ringing, accepted, declined, ...)."""

    __tablename__ = "call_callees"

    id: Mapped[int] = mapped_column(_SERIAL, primary_key=True, autoincrement=True)
    call_id: Mapped[uuid.UUID] = mapped_column(Uuid, ForeignKey("calls.id"))
    sdk_app_id: Mapped[int] = mapped_column(BigInteger)
    """Copied from the call so a user's history and the busy check need no join."""
    user_id: Mapped[str] = mapped_column(String(64))
    outcome: Mapped[str] = mapped_column(String(16))
    reason: Mapped[str | None] = mapped_column(String(64), default=None)
    answered_at: Mapped[float | None] = mapped_column(Double, default=None)
    responded_at: Mapped[float | None] = mapped_column(Double, default=None)
    """When the outcome stopped being ``ringing``."""
    ended_at: Mapped[float | None] = mapped_column(Double, default=None)
    """For a callee who accepted: when the call ended (their duration's end)."""

    __table_args__ = (
        Index("uq_call_callees_user", "call_id", "user_id", unique=True),
        Index("ix_call_callees_app_user", "sdk_app_id", "user_id", "outcome"),
    )
