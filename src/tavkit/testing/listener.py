"""A listener that keeps every callback it receives, for tests to read back."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from tavkit.client.listener import Listener
from tavkit.protocol import ChatMessage

__all__ = ["RecordingListener"]


class RecordingListener(Listener):
    """Keeps every callback it receives, in order, as ``(name, *args)`` tuples.

    ``on_user_info`` answers with ``"name of <userId>"`` for every user, so a test can
    check that the names reached the other side.
    """

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

    def on_screen_share(self, user_id: str, sharing: bool) -> None:
        self.events.append(("on_screen_share", user_id, sharing))

    def on_user_connection(self, user_id: str, status: str) -> None:
        self.events.append(("on_user_connection", user_id, status))
