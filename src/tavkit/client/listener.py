"""The call's listener: the seed's five callbacks plus membership and media events.

The seed (``TAvKit-README.md`` 3.8) has ``onUserInfoListener``,
``onSwitchCameraListener``, ``onMutedListener``, ``onHandupListener`` and
``onErrorListener``; here they are ``on_user_info``, ``on_switch_camera``,
``on_muted``, ``on_handup`` and ``on_error``, with the same arguments. A Python
program also needs to know who comes and goes and to get at the media, hence
``on_user_enter``, ``on_user_leave``, ``on_user_state`` and ``on_remote_track``; and
whether another member's network dropped and came back, ``on_user_connection``;
whether a member shares its screen, ``on_screen_share`` (the frames go to the kit's
``on_screen_frame``).
In-call messages (the seed's webim-component) arrive through ``on_message``.
Credentials about to end mid-call are asked for through ``on_user_sig_expired``
(TRTC's ``onUserSigExpired``).

Every method is optional: subclass :class:`Listener` and override what you need,
or pass any object that has some of these methods (:class:`ListenerProtocol`
describes them all). A method may be a coroutine function; the kit then runs it
as a task it owns. An exception in a listener is logged, never raised into the call.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Protocol, TypedDict

from aiortc import MediaStreamTrack

from tavkit.protocol import ChatMessage

__all__ = ["Listener", "ListenerProtocol", "UserInfo"]


class UserInfo(TypedDict, total=False):
    """What ``on_user_info``'s callback accepts per user, as in the seed."""

    userId: str
    userName: str
    avatarUrl: str


class ListenerProtocol(Protocol):
    """Every callback a listener may implement (all optional at run time)."""

    def on_user_info(
        self, user_ids: list[str], callback: Callable[[list[UserInfo]], None]
    ) -> Any: ...
    def on_switch_camera(self, front: bool) -> Any: ...
    def on_muted(self, muted: bool) -> Any: ...
    def on_handup(self) -> Any: ...
    def on_error(self, error: dict[str, Any]) -> Any: ...
    def on_user_enter(self, user_id: str) -> Any: ...
    def on_user_leave(self, user_id: str, reason: str) -> Any: ...
    def on_user_state(self, user_id: str, muted: bool, camera: bool) -> Any: ...
    def on_user_connection(self, user_id: str, status: str) -> Any: ...
    def on_screen_share(self, user_id: str, sharing: bool) -> Any: ...
    def on_remote_track(self, user_id: str, track: MediaStreamTrack) -> Any: ...
    def on_message(self, message: ChatMessage) -> Any: ...
    def on_user_sig_expired(self) -> Any: ...


class Listener:
    """A listener that ignores everything; override the callbacks you care about."""

    def on_user_info(self, user_ids: list[str], callback: Callable[[list[UserInfo]], None]) -> Any:
        """Remote users entered; call ``callback([{userId, userName, avatarUrl}])`` to name them."""

    def on_switch_camera(self, front: bool) -> Any:
        """The camera was switched; ``front`` is true for the front (first) source."""

    def on_muted(self, muted: bool) -> Any:
        """Our microphone was muted (``True``) or unmuted."""

    def on_handup(self) -> Any:
        """We hung up (``hangup()`` was called)."""

    def on_error(self, error: dict[str, Any]) -> Any:
        """An error in the seed's shape ``{"module", "errorCode", "errorMsg"}``."""

    def on_user_enter(self, user_id: str) -> Any:
        """Another member is in the room (already there when we entered, or just joined)."""

    def on_user_leave(self, user_id: str, reason: str) -> Any:
        """Another member left; ``reason`` is the server's (exit, timeout, replaced, ...)."""

    def on_user_state(self, user_id: str, muted: bool, camera: bool) -> Any:
        """Another member muted/unmuted or turned the camera off/on."""

    def on_user_connection(self, user_id: str, status: str) -> Any:
        """Another member's link to the server dropped (``reconnecting``) or came back.

        ``reconnecting`` is not a leave: the member may resume within its heartbeat
        timeout, so keep its place (its media is on hold); ``connected`` follows when it
        does, ``on_user_leave`` (reason ``timeout``) when it does not.
        """

    def on_screen_share(self, user_id: str, sharing: bool) -> Any:
        """Another member started (``True``) or stopped (``False``) sharing its screen.

        Its frames reach the kit's ``on_screen_frame`` (and ``PeerStats.screen_frames``)
        while it shares; a member who leaves while sharing stops first.
        """

    def on_remote_track(self, user_id: str, track: MediaStreamTrack) -> Any:
        """A remote audio or video track arrived (a copy: reading it steals nothing)."""

    def on_message(self, message: ChatMessage) -> Any:
        """An in-call message (text or custom, ours included): each once, in ``seq`` order.

        On entering, the session's earlier messages come first (a late joiner's history).
        """

    def on_user_sig_expired(self) -> Any:
        """Our userSig (or privateMapKey) is about to end: return fresh credentials.

        Return (or, as a coroutine, resolve to) a new userSig, or a ``(userSig,
        privateMapKey)`` pair when the key needs renewing too; the kit sends it to the
        server, which keeps us in the call. A userSig alone keeps the privateMapKey in
        use. ``None`` (the default) lets the credentials run out: the server then
        removes us with reason ``expired`` and the call ends with ``on_error``. Called
        once per warning, ahead of the end (at most a minute ahead).
        """
        return None
