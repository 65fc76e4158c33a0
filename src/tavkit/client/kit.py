"""``TAvKit``: the seed's call component for Python programs, on aiortc.

The same ``start(options)`` and listener as the seed (``TAvKit-README.md`` 3.7-3.8)
and as ``<tavkit-call>``, against a tavkit server::

    async with TAvKit("http://127.0.0.1:8080", host_addresses=["127.0.0.1"]) as kit:
        await kit.start(sdk_app_id=1400000001, user_id="bot", user_sig=sig,
                        room_id=1234, listener=MyListener())
        async with asyncio.timeout(60):
            await kit.wait_closed()

``start`` validates the options, enters the room (REST), opens the media source for
the kinds the member's privileges let it send (none for an audience member: a
refused signature or privateMapKey never opens a device, as in ``<tavkit-call>``),
opens the signaling socket and connects to every member already there. Any failure
is reported to ``listener.on_error`` in the seed's shape and then raised as the
matching :mod:`tavkit.errors` exception; a media source that fails after ``enter``
gives the membership back (REST ``exit``).

Every transceiver the kit creates, offering or answering (the recorder included),
gets the widest direction the privileges allow
(:func:`tavkit.protocol.sdp.allowed_direction`): a member never asks to receive a
kind without the receive bit, nor to send one without the send bit, so the
server's check of every relayed SDP never has to refuse it. While the call runs, one heartbeat task
keeps the membership alive, the socket resumes by itself after drops
(``session.py``), each peer connection recovers by itself (``peer.py``), and if the
server has forgotten us after a long outage the kit enters the room again
(``_rejoin.py``).

In-call messages (``docs/protocol.md`` section 5): :meth:`TAvKit.send_message` and
:meth:`TAvKit.send_custom_message` return the stored message once the server has
acknowledged it, and ``listener.on_message`` gets every message of the session -
history first, own ones included - exactly once and in ``seq`` order, across socket
resumes (the ordering itself is ``_im.py``, the acknowledgements ``_outbox.py``).

Credentials that end during the call (``docs/protocol.md`` section 2): when the
server warns that the userSig (or privateMapKey) is about to end, the kit asks
``listener.on_user_sig_expired()`` for a new one and sends it (``_renewal.py``);
:meth:`TAvKit.renew` does the same on the application's own schedule. A member that
does not renew in time is removed with reason ``expired`` and the call ends.

Everything the kit starts - tasks, threads, sockets, peer connections - is owned
by it and released by :meth:`TAvKit.aclose` (also on ``async with`` exit).
"""

from __future__ import annotations

import asyncio
import contextlib
import os
from collections.abc import AsyncGenerator, Awaitable, Callable, Iterable, Sequence
from pathlib import Path
from typing import Any, Final

import httpx
from aiortc import MediaStreamTrack, RTCPeerConnection
from av.frame import Frame

from tavkit import ice as _ice
from tavkit.auth import Privilege
from tavkit.client._delivery import RemoteMedia
from tavkit.client._dispatch import Dispatcher, check_options
from tavkit.client._outbox import Outbox
from tavkit.client._publish import Publisher
from tavkit.client._rejoin import (
    REJOIN_FIRST_DELAY,
    REJOIN_MAX_DELAY,
    REJOIN_PATIENCE,
    enter_again,
)
from tavkit.client._renewal import Renewal
from tavkit.client._room import RoomState
from tavkit.client.api import Credentials, EnterResult, RoomApi
from tavkit.client.calls import FINAL_STATES, Invitation, OutgoingCall, UserSocket
from tavkit.client.connections import MediaConnection
from tavkit.client.listener import UserInfo
from tavkit.client.media import MediaSource, TestPattern
from tavkit.client.reporter import Reporter
from tavkit.client.sinks import PeerStats
from tavkit.client.timeline import JoinClock, JoinTimeline
from tavkit.errors import ServerCode, ServerError, TAvKitError, TrtcCode, TrtcError
from tavkit.protocol import (
    JOIN_TIMELINE_EVENT,
    ChatMessage,
    Leave,
    MediaLayer,
    Renewed,
    RoomId,
    ServerMessage,
    State,
    room_label,
)
from tavkit.protocol.calls import CallInfo, parse_call

__all__ = ["TAvKit"]

_LEAVE_TIMEOUT: Final = 3.0
# Seconds the log reporter may spend on its last sample and flush at hang-up.
_REPORTER_STOP_TIMEOUT: Final = 2.0


class TAvKit:
    """A call participant: media in and out, room membership, the seed's listener.

    Media (keyword options, all optional):
      ``source`` - a :class:`~tavkit.client.media.MediaSource`; default a test pattern.
      ``back_source`` - the other camera for :meth:`switch_camera`; ``None``: no switch
      (the callback still fires, the picture stays).
      ``record_dir`` - record each remote participant to ``<dir>/<userId>.mkv``.
      ``on_frame(user_id, frame)`` - called with every decoded remote frame.
      ``on_screen_frame(user_id, frame)`` - called with every decoded frame of a
      member's shared screen (its own m-line, ``a=content:slides``; never in
      ``on_frame``, never recorded). Whether a member shares: ``on_screen_share``.
      ``encode_once`` - share one VP8/Opus encoding among all peers (default ``True``);
      ``False`` lets aiortc encode per peer (adapts bitrate per peer, costs N x CPU).
      ``video_bitrate`` - the encode-once video bitrate in bit/s.

    Network:
      ``host_addresses`` - gather ICE host candidates on exactly these addresses
      (e.g. ``["127.0.0.1"]``); ``None`` keeps aioice's discovery, which skips
      loopback. See :mod:`tavkit.ice`.
      ``http_timeout`` (s) and ``http_retries`` - per REST call; exhausted: http 10000.
      ``start_timeout`` (s) - :meth:`start` gives up after this long (trtc -1019),
      waits for the server's 429s (``Retry-After``) included (default 30).
      ``transport`` - an httpx transport for the REST calls (testing, embedding).
      ``message_timeout`` (s) - how long :meth:`send_message` waits for the server's
      acknowledgement, socket resumes included (default 15).

    Logs:
      ``reporting`` - send log lines and per-peer quality samples to the server's
      ``POST /v1/logs`` while in a room (default ``True``; see
      :mod:`tavkit.client.reporter`). Never slows or breaks the call.
    """

    def __init__(
        self,
        server: str = "http://127.0.0.1:8080",
        *,
        source: MediaSource | None = None,
        back_source: MediaSource | None = None,
        record_dir: str | os.PathLike[str] | None = None,
        on_frame: Callable[[str, Frame], Any] | None = None,
        on_screen_frame: Callable[[str, Frame], Any] | None = None,
        encode_once: bool = True,
        video_bitrate: int = 1_000_000,
        host_addresses: Sequence[str] | None = None,
        http_timeout: float = 10.0,
        http_retries: int = 3,
        start_timeout: float = 30.0,
        transport: httpx.AsyncBaseTransport | None = None,
        reporting: bool = True,
        message_timeout: float = 15.0,
    ) -> None:
        self.server = server
        self._host_addresses = None
        if host_addresses is not None:
            self._host_addresses = _ice.validate_addresses(host_addresses)
            _ice.check_supported()
        self._source = source if source is not None else TestPattern()
        self._back_source = back_source
        self._encode_once = encode_once
        self._video_bitrate = video_bitrate
        self._http_timeout = http_timeout
        self._http_retries = http_retries
        if not start_timeout > 0:
            raise ValueError("start_timeout must be a positive number of seconds")
        self._start_timeout = start_timeout
        self._joined_at = 0.0  # loop time of the last membership that started
        self._rejoin_deadline: float | None = None  # of the current run of rejoins
        self._rejoins = 0
        self._transport = transport
        self._reporting = reporting
        self._message_timeout = message_timeout
        self._reporter: Reporter | None = None
        self._dispatch = Dispatcher()
        self._dispatch.on_report = self._log_error
        self._api: RoomApi | None = None
        self._room_id: RoomId = 0
        self._room: RoomState | None = None
        self._publishers: dict[str, Publisher] = {}
        self._media = RemoteMedia(
            Path(record_dir) if record_dir is not None else None, on_frame, self._dispatch.call
        )
        self._on_screen_frame = on_screen_frame
        self._seen_before: dict[str, PeerStats] = {}
        self._clock = JoinClock(on_complete=lambda _: self._report_timelines())
        self._closed = asyncio.Event()
        self._releasing: asyncio.Future[None] | None = None
        self._started = False
        self._outbox: Outbox | None = None
        self._renewal: Renewal | None = None
        self.user_info: dict[str, UserInfo] = {}
        self.muted = False
        self.camera = True
        self.front = True
        self._screen: tuple[MediaSource, Publisher] | None = None

    # -- the seed's API -----------------------------------------------------------------

    async def start(
        self,
        *,
        sdk_app_id: int,
        user_id: str,
        user_sig: str,
        room_id: RoomId | None = None,
        str_room_id: str | None = None,
        private_map_key: str | None = None,
        listener: object | None = None,
    ) -> None:
        """Enter the room and start the call; on failure report to ``on_error`` and raise.

        The options are the seed's (``sdkAppId``, ``userId``, ``userSig``, ``roomId``,
        ``privateMapKey``, ``listener``); the room is ``room_id`` (an ``int``; a
        ``str`` of digits is that number, other text a string room) or TRTC's
        ``str_room_id`` (always a string room: ``str_room_id="1234"`` is not room
        1234). ``listener`` is any object with some of the
        :class:`~tavkit.client.ListenerProtocol` methods. Raises
        :class:`~tavkit.errors.AvkitError` (options, signatures),
        :class:`~tavkit.errors.ServerError` (e.g. 14000 room full),
        :class:`~tavkit.errors.HttpError` (network) or
        :class:`~tavkit.errors.TrtcError` (media source; -1019 when the call is not up
        within ``start_timeout``). A 429 on ``enter`` is waited out, within that time.
        """
        if self._started:
            raise RuntimeError("this TAvKit was already started; make a new one per call")
        self._started = True
        self._clock.start()
        self._dispatch.listener = listener
        try:
            room = check_options(sdk_app_id, user_id, user_sig, room_id, str_room_id)
            self._outbox = Outbox(
                user_id,
                socket=lambda: self._room.socket if self._room is not None else None,
                spawn=self._dispatch.spawn,
                deliver=lambda message: self._dispatch.emit("on_message", message),
                timeout=self._message_timeout,
            )
            self._renewal = Renewal(
                socket=lambda: self._room.socket if self._room is not None else None,
                listener=lambda: self._dispatch.listener,
                current_key=lambda: self._api.credentials.private_map_key if self._api else None,
                on_renewed=self._renewed,
                report=self._dispatch.report,
                spawn=self._dispatch.spawn,
                timeout=self._message_timeout,
            )
            credentials = Credentials(sdk_app_id, user_id, user_sig, private_map_key)
            self._api = RoomApi(
                self.server,
                credentials,
                timeout=self._http_timeout,
                retries=self._http_retries,
                rate_limit_wait=self._start_timeout,
                transport=self._transport,
            )
            self._room_id = room
            try:
                async with asyncio.timeout(self._start_timeout):
                    await self._enter(room)
            except TimeoutError:
                raise await self._start_timed_out(room) from None
        except TAvKitError as exc:
            self._dispatch.report(exc)
            await self._release()
            raise

    # -- calls (docs/protocol.md section 7) ----------------------------------------------

    async def call(
        self,
        *,
        callees: Sequence[str],
        media: str = "video",
        sdk_app_id: int,
        user_id: str,
        user_sig: str,
        room_id: RoomId | None = None,
        ring_timeout: float | None = None,
        data: Any = None,
        private_map_key: str | None = None,
        listener: object | None = None,
        device: str = "default",
    ) -> OutgoingCall:
        """Ring ``callees`` and wait for them in the call's room; the call's handle.

        ``await handle.result()`` is ``accepted`` once a callee answers (this client is
        already in the room, so the media flows), else how the call ended; a call over
        unanswered leaves the room. ``room_id`` None: the server picks a fresh room;
        ``ring_timeout`` (s): how long it rings (the server's default is 30).
        Raises like :meth:`start`, and server 10004 for a refused call request.
        """
        credentials = Credentials(sdk_app_id, user_id, user_sig, private_map_key)
        socket = await UserSocket.open(self.server, credentials, device, listener=listener)
        api = self._calls_api(credentials)
        socket.on_renewed = api.set_credentials
        body: dict[str, Any] = {"callees": list(callees), "media": media}
        for name, value in (("roomId", room_id), ("timeout", ring_timeout), ("data", data)):
            if value is not None:
                body[name] = value
        try:
            call = parse_call((await api.create_call(body))["call"])
        except BaseException:
            await socket.aclose()
            await api.aclose()
            raise
        entered = asyncio.Event()

        async def leave() -> None:
            await entered.wait()  # a call over while we enter: leave once in, not midway
            await self.hangup()

        handle = OutgoingCall(call, api, socket, leave=leave)
        try:
            if call.state == "ringing":
                await self.start(
                    sdk_app_id=sdk_app_id,
                    user_id=user_id,
                    user_sig=user_sig,
                    room_id=_numeric(call.room_id),
                    str_room_id=_string(call.room_id),
                    private_map_key=private_map_key,
                    listener=listener,
                )
        finally:
            entered.set()
        return handle

    async def listen(
        self,
        *,
        sdk_app_id: int,
        user_id: str,
        user_sig: str,
        private_map_key: str | None = None,
        listener: object | None = None,
        device: str = "default",
    ) -> AsyncGenerator[Invitation, None]:
        """The calls ringing this user, as :class:`~tavkit.client.calls.Invitation`\\ s.

        ``await invitation.accept()`` enters the call's room with this client (one
        call per ``TAvKit``). Keep iterating to follow the accepted call: when it ends
        (the caller hangs up, the room empties) this client leaves and the iteration
        stops. Invitations already ringing when it starts come first. The user socket's
        userSig is renewed through ``listener.on_user_sig_expired()``, as a room's is.
        """
        credentials = Credentials(sdk_app_id, user_id, user_sig, private_map_key)
        socket = await UserSocket.open(self.server, credentials, device, listener=listener)
        api = self._calls_api(credentials)
        socket.on_renewed = api.set_credentials
        joined: list[str] = []

        async def join(call: CallInfo) -> None:
            joined.append(call.call_id)
            await self.start(
                sdk_app_id=sdk_app_id,
                user_id=user_id,
                user_sig=socket.credentials.user_sig,  # renewed while it rang, perhaps
                room_id=_numeric(call.room_id),
                str_room_id=_string(call.room_id),
                private_map_key=private_map_key,
                listener=listener,
            )

        async def resync() -> None:
            # The socket's gap could not be replayed: an accepted call may have ended.
            for call_id in joined:
                with contextlib.suppress(TAvKitError):
                    if parse_call((await api.get_call(call_id))["call"]).state in FINAL_STATES:
                        await self.hangup()
                        await socket.aclose()  # ends the iteration below

        socket.on_gap = resync
        try:
            for call in socket.ringing:
                yield Invitation(call, api, join)
            async for frame in socket.frames():
                if frame.type == "call-invite" and not joined:
                    yield Invitation(frame.call, api, join)
                elif frame.call.call_id in joined and frame.call.state in FINAL_STATES:
                    await self.hangup()
                    return
        finally:
            await socket.aclose()
            await api.aclose()

    def _calls_api(self, credentials: Credentials) -> RoomApi:
        return RoomApi(
            self.server,
            credentials,
            timeout=self._http_timeout,
            retries=self._http_retries,
            transport=self._transport,
        )

    async def mute(self, muted: bool = True) -> None:
        """Mute (silence) or unmute the microphone, tell the room, fire ``on_muted``."""
        self.muted = muted
        if "audio" in self._publishers:
            self._publishers["audio"].blank = muted
        await self._send_state()
        self._dispatch.emit("on_muted", muted)

    async def enable_camera(self, enabled: bool = True) -> None:
        """Turn the camera on or off (black frames, as a browser sends) and tell the room."""
        self.camera = enabled
        if "video" in self._publishers:
            self._publishers["video"].blank = not enabled
        await self._send_state()

    def switch_camera(self) -> bool:
        """Swap ``source`` and ``back_source``, fire ``on_switch_camera``; return ``front``."""
        self.front = not self.front
        video = self._publishers.get("video")
        chosen = self._source if self.front else self._back_source
        if video is not None and chosen is not None and chosen.video is not None:
            video.switch(chosen.video)
        self._dispatch.emit("on_switch_camera", self.front)
        return self.front

    @property
    def sharing(self) -> bool:
        """Whether we share a screen now (:meth:`share_screen`)."""
        return self._screen is not None

    async def share_screen(self, source: MediaSource | None = None) -> None:
        """Share ``source``'s video as our screen, beside the camera (SFU rooms).

        The others receive it as its own stream (their ``on_screen_frame``) and hear
        ``on_screen_share``. ``source`` defaults to a 1280x720 test pattern at 5 fps;
        only its video is used, and it is closed when the share stops. Sharing needs
        the SEND_SUB privilege (64) and a call in an SFU room (a mesh room's Python
        member shares no screen): otherwise ``RuntimeError``, with nothing sent.
        Sharing again replaces the screen.
        """
        room = self._room
        if room is None or room.sfu is None:
            raise RuntimeError("share_screen() needs a call in an SFU room")
        if not room.entered.privileges & Privilege.SEND_SUB:
            raise RuntimeError("share_screen() needs the SEND_SUB privilege (64)")
        screen = source if source is not None else TestPattern(width=1280, height=720, fps=5)
        await screen.open_kinds(audio=False, video=True)
        if screen.video is None:
            await screen.close()
            raise ValueError(f"{screen!r} has no video to share")
        publisher = Publisher(
            "video", screen.video, encoded=self._encode_once, video_bitrate=self._video_bitrate
        )
        publisher.start()
        old, self._screen = self._screen, (screen, publisher)
        room.sfu.share(publisher)
        await self._send_state()
        if old is not None:
            await _close_screen(*old)

    async def stop_screen(self) -> None:
        """Stop sharing the screen (nothing happens when we do not share)."""
        old, self._screen = self._screen, None
        if old is None:
            return
        room = self._room
        if room is not None and room.sfu is not None:
            room.sfu.share(None)
        await self._send_state()
        await _close_screen(*old)

    async def send_message(self, text: str) -> ChatMessage:
        """Send a text message to the room; return it as the server stored it (with ``seq``).

        Waits for the server's acknowledgement (``message_timeout``); if the
        socket drops meanwhile, the message is sent again after the resume (the server
        stores it once). Raises :class:`~tavkit.errors.ServerError` when the server
        refuses it (10004: empty, over 4,000 characters, rate limited) or the call is
        over (14004), :class:`~tavkit.errors.HttpError` (10000) when no acknowledgement
        came in time, and ``RuntimeError`` before :meth:`start`.
        """
        return await self._send_chat("text", text)

    async def send_custom_message(self, data: Any) -> ChatMessage:
        """Send a custom message (an app command: any JSON value, at most 8 KiB compact).

        Delivered to every member's ``on_message`` like a text message, never shown in
        a chat panel. Same acknowledgement and errors as :meth:`send_message`.
        """
        return await self._send_chat("custom", data)

    async def renew(self, user_sig: str, private_map_key: str | None = None) -> None:
        """Replace the call's userSig (and privateMapKey) with fresh ones, mid-call.

        What the kit does by itself when the server warns that the credentials are
        ending and ``listener.on_user_sig_expired`` gives new ones. Without
        ``private_map_key`` the key in use (if any) is kept. A new key's privileges
        apply to peer connections made from now on; the server enforces them at once.
        Raises :class:`~tavkit.errors.AvkitError` (70346 userSig, 80/82/86/87
        privateMapKey) when the server refuses them - the old ones then stay until
        their end - :class:`~tavkit.errors.HttpError` when no answer came in time, and
        ``RuntimeError`` outside a call.
        """
        if self._renewal is None or self._closed.is_set():
            raise RuntimeError("renew() needs a call in progress")
        await self._renewal.renew(user_sig, private_map_key)

    def reconnect(self, user_id: str | None = None) -> list[str]:
        """Renegotiate, on fresh peer connections, the sessions this client offered.

        What the kit does by itself when such a connection fails (aiortc has no ICE
        restart); useful after a network change. Sessions the other side offered are
        repaired by that side (see :mod:`tavkit.client.peer`). Returns the userIds
        renegotiated.
        """
        if self._room is None:
            return []
        return self._room.reconnect(user_id)

    async def hangup(self) -> None:
        """Leave the room, fire ``on_handup`` and release everything (idempotent)."""
        room = self._room
        if room is not None and not room.leaving and not self._closed.is_set():
            room.leaving = True
            room.stop_heartbeat()
            if self._reporter is not None:
                self._reporter.log("info", "hangup")
            self._dispatch.emit("on_handup")
            if not await room.leave(Leave(), _LEAVE_TIMEOUT) and self._api is not None:
                with contextlib.suppress(TAvKitError):
                    await self._api.exit(self._room_id)
        await self._release()

    # -- state and lifetime -----------------------------------------------------------------

    @property
    def room_uuid(self) -> str | None:
        """The session's UUID once entered."""
        return self._room.room_uuid if self._room else None

    @property
    def members(self) -> list[str]:
        """The other members' userIds, as the server last told us."""
        return sorted(self._room.members) if self._room else []

    @property
    def reconnecting(self) -> list[str]:
        """The other members whose network dropped and who may still resume (server's word)."""
        return sorted(self._room.reconnecting) if self._room else []

    @property
    def peers(self) -> dict[str, PeerStats]:
        """Per remote participant: frames received, first-frame time, connection state."""
        return self._room.stats() if self._room else {}

    @property
    def peers_seen(self) -> dict[str, PeerStats]:
        """Every participant met during the call, including those who left."""
        seen = dict(self._seen_before)
        if self._room is not None:
            seen.update(self._room.seen)
        return seen

    @property
    def join_timelines(self) -> dict[str, JoinTimeline]:
        """Per remote member: when each phase of the join happened, ms after :meth:`start`."""
        return self._clock.timelines()

    @property
    def resumes(self) -> int:
        """How many times the signaling socket came back after a drop (this membership)."""
        room = self._room
        return room.socket.resumes if room is not None and room.socket is not None else 0

    @property
    def errors(self) -> list[dict[str, Any]]:
        """Every error reported to ``on_error`` so far, in the seed's wire shape."""
        return self._dispatch.errors

    @property
    def closed(self) -> bool:
        """Whether the call is over (hung up, removed, room closed, or failed)."""
        return self._closed.is_set()

    @property
    def frames_sent(self) -> dict[str, int]:
        """Frames read from the local source per kind (what ``fps out`` is made of)."""
        return {kind: pub.frames_out for kind, pub in self._publishers.items()}

    @property
    def frames_delivered(self) -> dict[str, int]:
        """Frames (encoded packets with ``encode_once``) taken by the peers' senders, summed."""
        return {kind: pub.delivered for kind, pub in self._publishers.items()}

    def connections(self) -> list[MediaConnection]:
        """Every open aiortc peer connection now, mesh and SFU alike (a snapshot).

        A mesh room gives one ``mesh`` connection per linked member; an SFU room our
        ``publish`` connection and the current ``subscription`` (with its number and
        which member is on which mid). For statistics: ``connection.pc.getStats()``.
        """
        return self._room.connections() if self._room is not None else []

    def choose_layers(self, layers: dict[str, MediaLayer]) -> None:
        """In an SFU room, ask for a simulcast layer of members' video: userId -> layer.

        ``"low"`` (320 px wide from a browser), ``"medium"``, ``"high"``, or
        ``"paused"`` (no video at all). The choice holds for the rest of the call, each
        new subscription included; members not named get the high layer. A mesh room
        has no layers (raises ``RuntimeError``, as does a call not yet entered).
        """
        sfu = self._room.sfu if self._room is not None else None
        if sfu is None:
            raise RuntimeError("choose_layers() needs a call in an SFU room")
        sfu.choose_layers(layers)

    async def quality(self) -> dict[str, dict[str, float]]:
        """Per peer: RTT (s) and bytes received/sent, from aiortc's statistics."""
        return await self._room.quality() if self._room else {}

    async def wait_closed(self) -> None:
        """Wait until the call ends (bound it with ``asyncio.timeout``)."""
        await self._closed.wait()

    async def aclose(self) -> None:
        """Hang up if still in the call and release everything."""
        await self.hangup()

    async def __aenter__(self) -> TAvKit:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.aclose()

    # -- internals ----------------------------------------------------------------------

    async def _open_media(self, privileges: int) -> None:
        """Open the sources for the kinds the member may send, and nothing else."""
        audio = bool(privileges & Privilege.SEND_AUDIO)
        video = bool(privileges & Privilege.SEND_VIDEO)
        if audio or video:
            await self._source.open_kinds(audio=audio, video=video)
            self._clock.mark("media")
        if video and self._back_source is not None:
            await self._back_source.open_kinds(audio=False, video=True)

    def _start_publishing(self, privileges: int) -> None:
        for kind, bit, track in (
            ("audio", Privilege.SEND_AUDIO, self._source.audio),
            ("video", Privilege.SEND_VIDEO, self._source.video),
        ):
            if track is None or not privileges & bit:
                continue
            publisher = Publisher(
                kind,  # type: ignore[arg-type]
                track,
                encoded=self._encode_once,
                video_bitrate=self._video_bitrate,
            )
            publisher.start()
            self._publishers[kind] = publisher

    async def _join(
        self,
        entered: EnterResult,
        prepare: Callable[[], Awaitable[Sequence[Publisher]]] | None = None,
    ) -> None:
        """Open this membership's room; ``prepare`` (the media) runs while its socket opens."""
        assert self._api is not None and self._outbox is not None
        room = RoomState(
            entered,
            user_id=self._api.credentials.user_id,
            configuration=lambda: _ice.configuration(  # renewals update room.entered
                room.entered.ice_servers, room.entered.ice_transport_policy
            ),
            host_addresses=self._host_addresses,
            publishers=list(self._publishers.values()),
            emit=self._dispatch.emit,
            report=self._dispatch.report,
            on_frame=self._frame,
            on_track=self._track,
            on_screen_frame=self._screen_frame,
            on_gone=self._membership_gone,
            on_left=self._media.left,
            store_info=self._store_info,
            seen=self._seen_before,
            on_chat=self._receive,
            clock=self._clock,
        )
        self._room = room
        await room.connect(self._api, self._room_id, prepare)
        self._joined_at = asyncio.get_running_loop().time()
        await self._start_reporter(entered.room_uuid)
        if self._screen is not None and room.sfu is not None:  # a rejoin: share again
            room.sfu.share(self._screen[1])
        if self.muted or not self.camera or self.sharing:
            await self._send_state()

    async def _enter(self, room_id: RoomId) -> None:
        """Enter, then open the media the privileges allow while the socket opens, join.

        The body of :meth:`start`. The media waits for the ``enter`` response (a
        refused signature opens no device); the socket does not wait for the media.
        If either fails, the membership is given back (``RoomState.connect``).
        """
        assert self._api is not None
        entered = await self._api.enter(room_id)
        self._clock.mark("enter")

        async def media() -> list[Publisher]:
            await self._open_media(entered.privileges)
            self._start_publishing(entered.privileges)
            return list(self._publishers.values())

        await self._join(entered, media)

    async def _start_timed_out(self, room_id: RoomId) -> TrtcError:
        """The error of a :meth:`start` past its deadline, once any place taken is given back."""
        if self._api is not None:  # the enter may have landed: do not leave a ghost member
            with contextlib.suppress(TAvKitError, TimeoutError):
                async with asyncio.timeout(_LEAVE_TIMEOUT):
                    await self._api.exit(room_id)
        return TrtcError(
            TrtcCode.ENTER_FAILED_OR_EXITED,
            f"the call in room {room_label(room_id)} was not up within {self._start_timeout:g} s",
        )

    def _membership_gone(self, error: TAvKitError | None, rejoin: bool) -> None:
        """The socket ended for good: rejoin after a long outage, else end the call."""
        if error is not None:
            self._dispatch.report(error)
        if rejoin and self._api is not None and not self._closed.is_set():
            self._dispatch.spawn(self._rejoin())
        else:
            self._dispatch.spawn(self._release())

    async def _rejoin(self) -> None:
        api = self._api
        assert api is not None
        old = self._room
        self._room = None
        if old is not None:
            self._seen_before.update(old.seen)
            await old.aclose()

        async def enter() -> None:
            await self._join(await api.enter(self._room_id))

        # A membership that held for REJOIN_PATIENCE earns fresh patience; one that the
        # server keeps dropping at once (a socket refused after every enter) does not,
        # and each such rejoin waits longer: the kit gives up instead of looping.
        loop = asyncio.get_running_loop()
        now = loop.time()
        if self._rejoin_deadline is None or now - self._joined_at >= REJOIN_PATIENCE:
            self._rejoin_deadline, self._rejoins = now + REJOIN_PATIENCE, 0
        patience = self._rejoin_deadline - now
        pause = min(REJOIN_FIRST_DELAY * 2**self._rejoins, REJOIN_MAX_DELAY) if self._rejoins else 0
        self._rejoins += 1
        if patience <= pause:
            self._dispatch.report(
                TrtcError(
                    TrtcCode.ENTER_FAILED_OR_EXITED,
                    f"the server kept dropping our membership: gave up entering room"
                    f" {room_label(self._room_id)} again after {self._rejoins - 1} tries",
                )
            )
            await self._release()
            return
        await asyncio.sleep(pause)
        if not await enter_again(enter, self._dispatch.report, patience=patience - pause):
            await self._release()

    def _receive(self, message: ServerMessage) -> bool:
        """The frames the room does not handle itself: renewals', then the messages'."""
        if self._renewal is not None and self._renewal.receive(message):
            return True
        return self._outbox is not None and self._outbox.receive(message)

    def _renewed(self, answer: Renewed, user_sig: str, private_map_key: str | None) -> None:
        """Use accepted credentials everywhere: REST, logs, socket resumes, new links."""
        if self._api is not None:
            old = self._api.credentials
            fresh = Credentials(old.sdk_app_id, old.user_id, user_sig, private_map_key)
            self._api.set_credentials(fresh)
            if self._reporter is not None:
                self._reporter.set_credentials(fresh)
        if self._room is not None:
            self._room.renewed(answer)

    async def _send_state(self) -> None:
        room = self._room
        if room is not None:
            room.state = State(muted=self.muted, camera=self.camera, screen=self.sharing)
            if room.socket is not None:
                await room.socket.send(room.state)

    async def _send_chat(self, kind: str, value: Any) -> ChatMessage:
        outbox = self._outbox
        if outbox is None:
            raise RuntimeError("start() the call before sending messages")
        if self._closed.is_set():
            raise ServerError(ServerCode.USER_EXITED, "the call is over")
        return await outbox.send(kind, value)

    def _frame(self, user_id: str, frame: Frame) -> None:
        if self._room is not None and self._room.receives_from(user_id):
            self._media.deliver(user_id, frame)
        # else: the last frames of a link being closed after its member left

    def _screen_frame(self, user_id: str, frame: Frame) -> None:
        room = self._room
        if self._on_screen_frame is not None and room is not None and room.receives_from(user_id):
            self._dispatch.call(self._on_screen_frame, user_id, frame)

    def _track(self, user_id: str, track: MediaStreamTrack) -> None:
        if self._dispatch.has("on_remote_track"):
            self._dispatch.emit("on_remote_track", user_id, self._media.tap(user_id, track.kind))

    def _store_info(self, infos: list[UserInfo]) -> None:
        """The seed's ``onUserInfoListener`` callback: names and avatars, kept by userId.

        The names are also logged (``user-info``, as the browser does), so the
        dashboard can show people by name.
        """
        for info in infos:
            user_id = info.get("userId")
            if isinstance(user_id, str):
                self.user_info[user_id] = info
        self._report_names(infos)

    def _report_names(self, infos: Iterable[UserInfo]) -> None:
        """Log the names in ``infos`` (``user-info``) once a reporter runs; see _store_info."""
        names: dict[str, str] = {}
        for info in infos:
            user_id, name = info.get("userId"), info.get("userName")
            if isinstance(user_id, str) and isinstance(name, str) and name:
                names[user_id] = name[:64]
        if names and self._reporter is not None:
            self._reporter.log("info", "user-info", {"names": names})

    async def _start_reporter(self, room_uuid: str) -> None:
        """Report on this session (a rejoin after a long outage may be a new one)."""
        if not self._reporting or self._api is None:
            return
        old = self._reporter
        if old is not None:
            if old.room_uuid == room_uuid:
                return
            self._reporter = None
            self._dispatch.spawn(old.stop())
        self._reporter = Reporter(
            self.server,
            self._api.credentials,
            room_uuid,
            self._peer_connections,
            stop_timeout=_REPORTER_STOP_TIMEOUT,
            transport=self._transport,
        )
        await self._reporter.start()
        self._reporter.log("info", "joined", {"members": self.members})
        self._report_names(self.user_info.values())  # those given before the reporter ran
        self._report_timelines()

    def _report_timelines(self, *, partial: bool = False) -> None:
        """Report each remote member's join timeline once (see :mod:`tavkit.client.timeline`)."""
        if self._reporter is not None:
            for timeline in self._clock.unreported(partial=partial):
                self._reporter.log("info", JOIN_TIMELINE_EVENT, timeline.to_wire())

    def _peer_connections(self) -> dict[str, RTCPeerConnection | None]:
        room = self._room
        return {uid: link.pc for uid, link in room.links.items()} if room is not None else {}

    def _log_error(self, error: TAvKitError) -> None:
        if self._reporter is not None:
            self._reporter.log("error", "error", error=error)

    async def _release(self) -> None:
        """Release everything once; later callers wait for the first release to finish."""
        if self._releasing is None:
            self._closed.set()
            self._releasing = asyncio.ensure_future(self._release_all())
        await asyncio.shield(self._releasing)

    async def _release_all(self) -> None:
        if self._outbox is not None:
            self._outbox.close()
        await self._dispatch.cancel_all(_LEAVE_TIMEOUT)
        self._report_timelines(partial=True)  # as far as each got: where a join got stuck
        reporter, self._reporter = self._reporter, None
        if reporter is not None:  # before the room closes: its last sample sees the peers
            await reporter.stop()
        room, self._room = self._room, None
        if room is not None:
            self._seen_before.update(room.seen)
            await room.aclose()
        for publisher in self._publishers.values():
            await publisher.aclose()
        screen, self._screen = self._screen, None
        if screen is not None:
            await _close_screen(*screen)
        for source in (self._source, self._back_source):
            if source is not None:
                await source.close()
        await self._media.aclose()
        if self._api is not None:
            await self._api.aclose()


async def _close_screen(source: MediaSource, publisher: Publisher) -> None:
    await publisher.aclose()
    await source.close()


def _numeric(room: RoomId) -> int | None:
    """A call's room as ``start()``'s ``room_id``: the number, None for a string room."""
    return None if isinstance(room, str) else room


def _string(room: RoomId) -> str | None:
    """A call's room as ``start()``'s ``str_room_id`` (as ``room_id`` text of digits would
    read as the number): the string room, None for a numeric room."""
    return room if isinstance(room, str) else None
