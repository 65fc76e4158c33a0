"""Webhook endpoints and dead letters: where an app's journal goes, and how far it got.

One :class:`WebhookEndpointRow` per app holds the endpoint (URL, signing secret) and
the delivery state the dispatcher (:mod:`tavkit.server.webhooks`) keeps in the
database rather than in memory, so a restart or another replica carries on where the
last one stopped: ``position`` (the last ``app_seq`` delivered or given up on), the
retry schedule of the event after it, and the lease saying which replica delivers.

The secret is stored because every replica must sign with it and ``PUT
/v1/admin/webhooks`` sets it at run time; it is never returned by the API nor logged.
"""

from __future__ import annotations

from sqlalchemy import BigInteger, Double, ForeignKey, Index, Integer, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from tavkit.server.store.models import Base

__all__ = ["WebhookDeadRow", "WebhookEndpointRow"]

_SERIAL = BigInteger().with_variant(Integer(), "sqlite")


class WebhookEndpointRow(Base):
    """An app's webhook endpoint and its delivery position."""

    __tablename__ = "webhook_endpoints"

    sdk_app_id: Mapped[int] = mapped_column(
        BigInteger, ForeignKey("apps.sdk_app_id"), primary_key=True, autoincrement=False
    )
    url: Mapped[str] = mapped_column(Text)
    secret: Mapped[str] = mapped_column(Text)
    position: Mapped[int] = mapped_column(BigInteger, default=0)
    """The ``app_seq`` of the last event delivered (or dead); the next one goes after it."""
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    """Failed attempts at the event after ``position`` (0: none failed yet)."""
    failing_since: Mapped[float | None] = mapped_column(Double, default=None)
    """When that event first failed; past the give-up time it is dead."""
    next_attempt_at: Mapped[float | None] = mapped_column(Double, default=None)
    last_error: Mapped[str | None] = mapped_column(Text, default=None)
    lease_owner: Mapped[str | None] = mapped_column(String(64), default=None)
    """The replica delivering for this app (its ``replica_name``) until ``lease_until``."""
    lease_until: Mapped[float | None] = mapped_column(Double, default=None)
    updated_at: Mapped[float] = mapped_column(Double)


class WebhookDeadRow(Base):
    """An event given up on after retrying for the give-up time: which, and why."""

    __tablename__ = "webhook_dead"

    id: Mapped[int] = mapped_column(_SERIAL, primary_key=True, autoincrement=True)
    sdk_app_id: Mapped[int] = mapped_column(BigInteger, ForeignKey("apps.sdk_app_id"))
    app_seq: Mapped[int] = mapped_column(BigInteger)
    attempts: Mapped[int] = mapped_column(Integer)
    last_error: Mapped[str] = mapped_column(Text)
    died_at: Mapped[float] = mapped_column(Double)

    __table_args__ = (Index("ix_webhook_dead_app_seq", "sdk_app_id", "app_seq"),)
