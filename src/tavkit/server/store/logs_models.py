"""The tables of the elk-component: client log lines and call-quality samples.

Both belong to a session (``room_sessions.id``) and to the member who reported
them, so an operator can read one call back, participant by participant, after it
ended. They live on the same declarative ``Base`` as the room tables, so one
``MetaData`` (and one Alembic history) describes the whole database.

Times are Unix seconds as floats, like the room tables. ``at`` is the client's
clock corrected by the offset measured when the batch arrived (see
:mod:`tavkit.server.logs.routes`), and ``received_at`` is the server's clock; keeping both
lets a reader tell a late batch from a skewed clock. Quality figures are nullable:
a browser reports frame rate and resolution, aiortc does not, and nothing is better
than a made-up zero.
"""

from __future__ import annotations

import uuid

from sqlalchemy import (
    BigInteger,
    CheckConstraint,
    Double,
    ForeignKey,
    Index,
    Integer,
    String,
    Text,
    Uuid,
)
from sqlalchemy.orm import Mapped, mapped_column

from tavkit.server.store.models import Base

__all__ = ["LOG_LEVELS", "ClientLogRow", "QualitySampleRow"]

# SQLite only auto-increments an INTEGER PRIMARY KEY; PostgreSQL wants a bigint.
_SERIAL = BigInteger().with_variant(Integer(), "sqlite")

LOG_LEVELS = ("debug", "info", "warn", "error")
"""The levels a client may report, least severe first."""


class ClientLogRow(Base):
    """One structured log line a client sent: an event name, a level, maybe a seed error."""

    __tablename__ = "client_logs"

    id: Mapped[int] = mapped_column(_SERIAL, primary_key=True, autoincrement=True)
    session_id: Mapped[uuid.UUID] = mapped_column(Uuid, ForeignKey("room_sessions.id"))
    user_id: Mapped[str] = mapped_column(String(64))
    at: Mapped[float] = mapped_column(Double)
    received_at: Mapped[float] = mapped_column(Double)
    level: Mapped[str] = mapped_column(String(8))
    event: Mapped[str] = mapped_column(String(64))
    error_module: Mapped[str | None] = mapped_column(String(8), default=None)
    error_code: Mapped[int | None] = mapped_column(Integer, default=None)
    error_msg: Mapped[str | None] = mapped_column(String(500), default=None)
    data: Mapped[str | None] = mapped_column(Text, default=None)
    """Free-form details as a JSON object (text), at most a few KiB."""

    __table_args__ = (
        CheckConstraint("level IN ('debug', 'info', 'warn', 'error')", name="level_known"),
        CheckConstraint("(error_module IS NULL) = (error_code IS NULL)", name="error_has_code"),
        Index("ix_client_logs_session_at", "session_id", "at"),
        Index("ix_client_logs_session_user", "session_id", "user_id", "at"),
    )


class QualitySampleRow(Base):
    """One getStats sample of one connection: ``user_id``'s view of ``peer_id``."""

    __tablename__ = "quality_samples"

    id: Mapped[int] = mapped_column(_SERIAL, primary_key=True, autoincrement=True)
    session_id: Mapped[uuid.UUID] = mapped_column(Uuid, ForeignKey("room_sessions.id"))
    user_id: Mapped[str] = mapped_column(String(64))
    peer_id: Mapped[str] = mapped_column(String(64))
    at: Mapped[float] = mapped_column(Double)
    received_at: Mapped[float] = mapped_column(Double)
    rtt_ms: Mapped[float | None] = mapped_column(Double, default=None)
    jitter_ms: Mapped[float | None] = mapped_column(Double, default=None)
    packet_loss: Mapped[float | None] = mapped_column(Double, default=None)
    """Fraction (0..1) of inbound packets lost since the previous sample."""
    bitrate_in_kbps: Mapped[float | None] = mapped_column(Double, default=None)
    bitrate_out_kbps: Mapped[float | None] = mapped_column(Double, default=None)
    fps: Mapped[float | None] = mapped_column(Double, default=None)
    width: Mapped[int | None] = mapped_column(Integer, default=None)
    height: Mapped[int | None] = mapped_column(Integer, default=None)
    candidate_type: Mapped[str | None] = mapped_column(String(8), default=None)
    """``host``, ``srflx``, ``prflx`` or ``relay``: how the media path was made."""

    __table_args__ = (
        CheckConstraint(
            "packet_loss IS NULL OR (packet_loss >= 0 AND packet_loss <= 1)",
            name="loss_is_fraction",
        ),
        Index("ix_quality_samples_session_at", "session_id", "at"),
        Index("ix_quality_samples_session_user", "session_id", "user_id", "at"),
    )
