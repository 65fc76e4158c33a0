"""The knobs of one load test run, validated once so the runner can trust them."""

from __future__ import annotations

import re
import secrets
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Literal

if TYPE_CHECKING:
    from tavkit.loadtest.report import Recorder

__all__ = ["LoadConfig", "parse_app"]

_RUN_RE = re.compile(r"[A-Za-z0-9]{1,16}")
U32_MAX = 0xFFFF_FFFF


def parse_app(text: str) -> tuple[int, str]:
    """Read ``ID:KEY`` (the app's sdkAppId and its secret key)."""
    sdk_app_id, sep, key = text.partition(":")
    if not sep or not key:
        raise ValueError("expected ID:KEY")
    try:
        return int(sdk_app_id), key
    except ValueError:
        raise ValueError(f"sdkAppId {sdk_app_id!r} is not a number") from None


@dataclass(frozen=True)
class LoadConfig:
    """One run: who, how many, how fast, for how long, and what each participant does.

    Participant ``i`` is ``lt-<run>-<i>`` in room ``room_base + i % rooms``. Traffic
    (signals, messages) flows only once everyone has joined, for ``duration`` seconds;
    heartbeats run from each participant's join to its leave.
    """

    server: str
    sdk_app_id: int
    key: str = field(repr=False)
    participants: int = 10
    rooms: int = 2

    # Pace
    ramp: float = 50.0
    """Participants started per second."""
    duration: float = 10.0
    """Seconds of traffic once everyone has joined (0: join, check, leave)."""

    # Traffic per participant
    signal_interval: float = 1.0
    """Seconds between a participant's ``signal`` frames (0 disables signaling)."""
    messages: int = 3
    """Chat messages each participant sends during ``duration`` (0 disables them)."""
    heartbeat_interval: float | None = None
    """Seconds between ``ping`` frames; None follows the server's ``heartbeatInterval``."""

    # Recovery and the end
    recovery_timeout: float = 30.0
    """How long a participant keeps trying to get back after its socket dropped."""
    drain_timeout: float = 10.0
    """After the traffic, how long to wait for outstanding messages and signals (counted
    again from now while a participant is still reconnecting, within its recovery_timeout)."""

    # Identity
    run: str = field(default_factory=lambda: secrets.token_hex(3))
    """Tag in every userId, so runs against one server do not collide."""
    room_base: int | None = None
    """First roomId; None picks one from the run tag."""
    admin_user: str = "administrator"
    """The admin userId whose userSig reads ``/v1/admin/rooms`` for the consistency check."""
    admin_key: str | None = field(default=None, repr=False)
    """The server's admin key, which admin userSigs are signed with; None skips the admin
    view and asks each room as one of its members."""

    # Media
    media: Literal["none", "python"] = "none"
    """``python``: two real :class:`tavkit.client.TAvKit` (test pattern) take the place of
    the first two participants in each of the first ``media_rooms`` rooms."""
    media_rooms: int = 1

    # Connections
    http_connections: int = 50
    """Size of the shared HTTP connection pool."""
    timeout: float = 30.0
    """Bound on one REST call or one socket open."""

    on_progress: Callable[[Recorder], None] | None = field(default=None, compare=False)
    """Called about twice a second with the live counters (the CLI's display)."""

    def __post_init__(self) -> None:
        if self.participants < 1 or self.rooms < 1:
            raise ValueError("participants and rooms must be at least 1")
        if self.rooms > self.participants:
            raise ValueError("there must be at least one participant per room")
        if not _RUN_RE.fullmatch(self.run):
            raise ValueError("run must be 1-16 letters or digits")
        for name in ("ramp", "timeout"):
            if not getattr(self, name) > 0:
                raise ValueError(f"{name} must be positive")
        for name in ("duration", "signal_interval", "recovery_timeout", "drain_timeout"):
            if not getattr(self, name) >= 0:
                raise ValueError(f"{name} must be zero or more")
        if self.messages < 0:
            raise ValueError("messages must be zero or more")
        if self.heartbeat_interval is not None and not self.heartbeat_interval > 0:
            raise ValueError("heartbeat_interval must be positive")
        if self.media not in ("none", "python"):
            raise ValueError("media must be 'none' or 'python'")
        base = self.first_room
        if base < 1 or base + self.rooms - 1 > U32_MAX:
            raise ValueError("room_base leaves the roomId range 1..4294967295")

    @property
    def first_room(self) -> int:
        """The first roomId of this run."""
        if self.room_base is not None:
            return self.room_base
        return 100_000_000 + (int.from_bytes(self.run.encode(), "big") % 3_000_000) * 1000

    def user_id(self, index: int) -> str:
        """The userId of participant ``index``."""
        return f"lt-{self.run}-{index}"

    def room_of(self, index: int) -> int:
        """The roomId participant ``index`` enters."""
        return self.first_room + index % self.rooms
