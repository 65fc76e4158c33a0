"""Helpers for the Python client's tests: small media, a recording listener, polling.

Every client gathers ICE candidates on 127.0.0.1 only (``host_addresses``), the way
a loopback-only machine has to, and publishes a small test pattern so several
clients and their decoders fit on a two-core machine.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from tavkit.client import TAvKit, TestPattern
from tavkit.testing._wait import TIMEOUT, until
from tavkit.testing.listener import RecordingListener

__all__ = [
    "LOOPBACK",
    "TIMEOUT",
    "RecordingListener",
    "enter",
    "frames_from",
    "make_kit",
    "receiving",
    "small_pattern",
    "until",
]

LOOPBACK = ["127.0.0.1"]


def small_pattern(variant: int = 0) -> TestPattern:
    """A 320x240, 15 fps pattern with a tone: cheap to encode and decode."""
    return TestPattern(width=320, height=240, fps=15, variant=variant)


def make_kit(url: str, **options: Any) -> TAvKit:
    """A client for the server at ``url``, on loopback, with a small pattern."""
    options.setdefault("source", small_pattern())
    options.setdefault("host_addresses", LOOPBACK)
    options.setdefault("video_bitrate", 300_000)
    return TAvKit(url, **options)


async def enter(
    kit: TAvKit,
    server: Any,
    user_id: str,
    room_id: int | str | None,
    listener: Any = None,
    **options: Any,
) -> None:
    """Start ``kit`` in ``room_id`` as ``user_id`` with a valid userSig from ``server``."""
    await kit.start(
        sdk_app_id=server.app_id,
        user_id=user_id,
        user_sig=server.sig(user_id),
        room_id=room_id,
        listener=listener,
        **options,
    )


def receiving(kit: TAvKit, user_id: str, video: int = 10, audio: int = 10) -> Callable[[], bool]:
    """A condition: ``kit`` has decoded at least this many frames from ``user_id``."""

    def check() -> bool:
        stats = kit.peers_seen.get(user_id)
        return stats is not None and stats.video_frames >= video and stats.audio_frames >= audio

    return check


def frames_from(kit: TAvKit, user_id: str) -> tuple[int, int]:
    """(video, audio) frames ``kit`` has decoded from ``user_id`` so far."""
    stats = kit.peers_seen.get(user_id)
    return (stats.video_frames, stats.audio_frames) if stats else (0, 0)
