"""The tables of recording: one row per recorded file, and each app's recording policy.

A :class:`RecordingRow` is one participant's stint in a session, written by the
server's recorder (:mod:`tavkit.server.recording.service`) to ``path``, relative to the data
directory, so the data directory can move without touching the database. The row
is inserted as ``recording`` when the stint starts and completed when it stops,
with the file's size and SHA-256; a row still ``recording`` at start-up belongs to
a server that died mid-call, and becomes ``partial`` (the file stays decodable:
the writer flushes each cluster as it closes). ``stop_reason`` says why a file ended
(``0006_recording_stop_reason``).

:class:`AppSettingRow` holds per-app settings changed at run time through the admin
API; today only the recording policy, where NULL means the ``--recording`` default.
These tables sit on the same declarative ``Base`` as the room tables, so one
Alembic history (``0004_recordings``) covers them.
"""

from __future__ import annotations

import uuid
from typing import Literal, get_args

from sqlalchemy import (
    BigInteger,
    Boolean,
    CheckConstraint,
    Double,
    ForeignKey,
    Index,
    Integer,
    String,
    UniqueConstraint,
    Uuid,
)
from sqlalchemy.orm import Mapped, mapped_column

from tavkit.server.store.models import Base

__all__ = [
    "RECORDING_STATUSES",
    "STOP_REASONS",
    "AppSettingRow",
    "RecordingRow",
    "StopReason",
]

RECORDING_STATUSES = ("recording", "complete", "partial", "failed")
"""A recording's states: being written, then complete, partial (cut by a crash) or failed."""
StopReason = Literal[
    "left",
    "stopped",
    "session-closed",
    "shutdown",
    "file-limit",
    "session-limit",
    "disk-floor",
    "crashed",
    "replica-lost",
    "lease-lost",
    "error",
]
"""Why a recording file ended; the REST model and the column share this one list."""
STOP_REASONS: tuple[str, ...] = get_args(StopReason)
"""Why a file ended: its member left; an admin stopped the recording; the session closed;
the server shut down; the per-file or per-session limit; the free-disk floor; the server
died (found at the next start); the replica recording it died (closed by the replica that
took the recording over); the replica lost its recording lease to another (it could not
renew it in time); the writer failed."""


class RecordingRow(Base):
    """One participant's stint in a session, recorded to one Matroska file."""

    __tablename__ = "recordings"

    id: Mapped[uuid.UUID] = mapped_column(Uuid, primary_key=True)
    session_id: Mapped[uuid.UUID] = mapped_column(Uuid, ForeignKey("room_sessions.id"))
    user_id: Mapped[str] = mapped_column(String(64))
    stint: Mapped[int] = mapped_column(Integer)
    """The ``n`` of ``<userId>-<n>.mkv``: 1 for the user's first stint in the session."""
    path: Mapped[str] = mapped_column(String(300))
    """Relative to the data directory: ``recordings/<session uuid>/<userId>-<n>.mkv``."""
    started_at: Mapped[float] = mapped_column(Double)
    """Wall clock of the file's first packet (until then: when the stint began)."""
    ended_at: Mapped[float | None] = mapped_column(Double, default=None)
    duration: Mapped[float | None] = mapped_column(Double, default=None)
    """Seconds of media in the file."""
    size: Mapped[int | None] = mapped_column(BigInteger, default=None)
    sha256: Mapped[str | None] = mapped_column(String(64), default=None)
    status: Mapped[str] = mapped_column(String(16))
    has_video: Mapped[bool] = mapped_column(Boolean, default=False)
    has_audio: Mapped[bool] = mapped_column(Boolean, default=False)
    stop_reason: Mapped[str | None] = mapped_column(String(32), default=None)
    """One of :data:`STOP_REASONS` once the file is closed; NULL while it is written (and
    for rows older than migration 0006)."""

    __table_args__ = (
        CheckConstraint(
            "status IN ('recording', 'complete', 'partial', 'failed')", name="status_known"
        ),
        UniqueConstraint("session_id", "user_id", "stint", name="uq_recordings_session_user"),
        Index("ix_recordings_session", "session_id", "started_at"),
        Index("ix_recordings_status", "status"),
    )


class AppSettingRow(Base):
    """Settings an admin changed for one app at run time; NULL keeps the server default."""

    __tablename__ = "app_settings"

    sdk_app_id: Mapped[int] = mapped_column(
        BigInteger, ForeignKey("apps.sdk_app_id"), primary_key=True, autoincrement=False
    )
    recording: Mapped[str | None] = mapped_column(String(16), default=None)
    """``off``, ``auto`` or ``on-demand``; NULL: the ``--recording`` default."""

    __table_args__ = (
        CheckConstraint(
            "recording IS NULL OR recording IN ('off', 'auto', 'on-demand')",
            name="recording_known",
        ),
    )
