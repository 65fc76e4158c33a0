"""Helpers for the Python client's tests: small media, a recording listener, polling.

Every client gathers ICE candidates on 127.0.0.1 only (``host_addresses``), the way
a loopback-only machine has to, and publishes a small test pattern so several
clients and their decoders fit on a two-core machine.
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import Callable
from typing import Any

from tavkit.client import ChatMessage, Listener, TAvKit, TestPattern

# One unit of patience, scaled like websockets' test timeouts for slow machines.
TIMEOUT = float(os.environ.get("TAVKIT_TEST_TIMEOUT", "20"))
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


async def until(condition: Callable[[], bool], what: str, within: float = TIMEOUT) -> None:
    """Poll ``condition`` until it holds; fail the test naming ``what`` if it never does.

    Polling, not an event: the conditions read counters of several objects at once.
    """
    async with asyncio.timeout(within):
        while not condition():  # noqa: ASYNC110
            await asyncio.sleep(0.05)
    assert condition(), what


class RecordingListener(Listener):
    """Keeps every callback it receives, in order, as ``(name, *args)`` tuples."""

    def __init__(self) -> None:
        self.events: list[tuple[Any, ...]] = []
        self.info_callback: Callable[[list[Any]], None] | None = None

    def names(self) -> list[str]:
        """The callback names received so far."""
        return [event[0] for event in self.events]

    def errors(self) -> list[dict[str, Any]]:
        """The ``on_error`` payloads received so far."""
        return [event[1] for event in self.events if event[0] == "on_error"]

    def messages(self) -> list[ChatMessage]:
        """The in-call messages received so far (``on_message``), in order."""
        return [event[1] for event in self.events if event[0] == "on_message"]

    def on_message(self, message: ChatMessage) -> None:
        self.events.append(("on_message", message))

    def on_user_info(self, user_ids: list[str], callback: Callable[[list[Any]], None]) -> None:
        self.events.append(("on_user_info", list(user_ids)))
        callback([{"userId": uid, "userName": f"name of {uid}"} for uid in user_ids])

    def on_switch_camera(self, front: bool) -> None:
        self.events.append(("on_switch_camera", front))

    def on_muted(self, muted: bool) -> None:
        self.events.append(("on_muted", muted))

    def on_handup(self) -> None:
        self.events.append(("on_handup",))

    def on_error(self, error: dict[str, Any]) -> None:
        self.events.append(("on_error", error))

    def on_user_enter(self, user_id: str) -> None:
        self.events.append(("on_user_enter", user_id))

    def on_user_leave(self, user_id: str, reason: str) -> None:
        self.events.append(("on_user_leave", user_id, reason))

    def on_user_state(self, user_id: str, muted: bool, camera: bool) -> None:
        self.events.append(("on_user_state", user_id, muted, camera))

    def on_user_connection(self, user_id: str, status: str) -> None:
        self.events.append(("on_user_connection", user_id, status))


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
