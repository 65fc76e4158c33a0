"""A client of Janus's API over its WebSocket transport, for the VideoRoom plugin.

tavkit is the control plane and Janus moves the media (``docs/sfu.md``): the server
holds one :class:`JanusSession` per Janus and, on each member's behalf, a
:class:`VideoRoomHandle` per publisher or subscriber PeerConnection. Members never
talk to Janus; their SDP passes through here.

The protocol, as Janus 1.1 speaks it (``janus-protocol`` WebSocket subprotocol, one JSON
object per message):

* every request carries a ``transaction`` and the ``apisecret``; the answer echoes the
  transaction. Core requests answer ``success``/``error`` at once. A plugin ``message``
  answers either ``success`` with ``plugindata`` (synchronous VideoRoom requests:
  ``create``, ``destroy``, ``exists``, ``listparticipants``) or ``ack`` and, later, an
  ``event`` with the same transaction (``join``, ``configure``, ``publish``, ``start``,
  ``leave``): :meth:`JanusSession._request` waits for the one that settles it.
* events without a transaction (another publisher arrived or left, ``webrtcup``,
  ``hangup``, ``media``) name their handle in ``sender``; each handle has a queue of
  typed values (:data:`~tavkit.server.sfu.videoroom.Event`, read with
  :meth:`VideoRoomHandle.next_event`).
* a session dies after ``session_timeout`` (60 s) without a request, so a keepalive
  goes every :data:`KEEPALIVE_INTERVAL` seconds.

Errors: Janus's own (``{"janus": "error"}``) and the plugin's (``error_code`` in the
plugin data) both raise :class:`JanusError` with Janus's code; a dead socket or a
request that gets no answer in time raises :class:`JanusUnavailable`. Both are server
10000 to a member (``ServerError``): the member can do nothing about Janus.

Secrets: the ``apisecret`` and the rooms' secrets are in every request, so no request
is ever logged whole (only its verb and ids), and the websockets wire logger, which
prints frames at DEBUG, goes through :class:`~tavkit._redact.RedactingFilter`.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import json
import logging
import secrets
from collections.abc import Mapping, Sequence
from typing import Any, Final, Literal

from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed, InvalidHandshake, InvalidURI
from websockets.typing import Subprotocol

from tavkit._redact import RedactingFilter
from tavkit.errors import ServerCode, ServerError
from tavkit.server.sfu.videoroom import (
    Detached,
    Event,
    FeedStream,
    Joined,
    Subscription,
    parse_event,
)

__all__ = [
    "KEEPALIVE_INTERVAL",
    "JanusError",
    "JanusSession",
    "JanusUnavailable",
    "VideoRoomHandle",
]

logger = logging.getLogger(__name__)

_SUBPROTOCOL: Final = Subprotocol("janus-protocol")
_PLUGIN: Final = "janus.plugin.videoroom"
_WIRE_LOG: Final = logging.getLogger(f"{__name__}.wire")
"""websockets prints whole frames at DEBUG, and every frame holds the apisecret."""
_WIRE_LOG.addFilter(RedactingFilter())

KEEPALIVE_INTERVAL: Final = 25.0
"""Seconds between keepalives: well inside Janus's default 60 s ``session_timeout``."""
_REQUEST_TIMEOUT: Final = 10.0
_EVENTS_KEPT: Final = 256


class JanusError(ServerError):
    """Janus or its VideoRoom plugin refused a request; ``janus_code`` is Janus's number.

    VideoRoom's codes are in the plugin's documentation (426: no such room, 427: room
    exists, 433: unauthorized, 436: already publishing, ...); Janus's core ones in
    ``apierror.h`` (403: unauthorized, 458: no such session, ...).
    """

    def __init__(self, reason: str, janus_code: int | None = None) -> None:
        told = reason if janus_code is None else f"{reason} (Janus {janus_code})"
        super().__init__(ServerCode.INTERNAL, f"SFU: {told}")
        self.janus_code = janus_code
        self.reason = reason


class JanusUnavailable(JanusError):
    """Janus cannot be reached, went away, or did not answer in time."""


# --- The session ---------------------------------------------------------------------------


class JanusSession:
    """One Janus API session over one WebSocket, with its keepalive and its handles.

    Open with :meth:`connect`; :meth:`close` destroys the session (and so every handle and
    PeerConnection in it) and closes the socket. If the socket drops, every pending
    request fails with :class:`JanusUnavailable` and every handle gets :class:`Detached`.
    """

    def __init__(
        self, ws: ClientConnection, api_secret: str | None, *, request_timeout: float
    ) -> None:
        self._ws = ws
        self._secret = api_secret
        self._timeout = request_timeout
        self._ids = itertools.count(1)
        self._pending: dict[str, asyncio.Future[dict[str, Any]]] = {}
        self._settle_on_ack: set[str] = set()
        self._handles: dict[int, VideoRoomHandle] = {}
        self.id: int | None = None
        self.closed = asyncio.Event()
        self._reader = asyncio.create_task(self._read(), name="janus-reader")
        self._keepalive: asyncio.Task[None] | None = None

    @classmethod
    async def connect(
        cls,
        url: str,
        *,
        api_secret: str | None = None,
        # Timeouts
        open_timeout: float = 10.0,
        request_timeout: float = _REQUEST_TIMEOUT,
        keepalive_interval: float = KEEPALIVE_INTERVAL,
    ) -> JanusSession:
        """Open the socket to ``url`` (``ws://host:port``) and create a Janus session.

        ``api_secret`` is Janus's ``api_secret`` (None when Janus has none). Raises
        :class:`JanusUnavailable` if Janus cannot be reached and :class:`JanusError`
        if it refuses the session (a wrong secret is Janus 403).
        """
        try:
            ws = await connect(
                url,
                subprotocols=[_SUBPROTOCOL],
                logger=_WIRE_LOG,
                open_timeout=open_timeout,
                max_size=2**22,
                close_timeout=2.0,
            )
        except (OSError, TimeoutError, InvalidHandshake, InvalidURI) as exc:
            raise JanusUnavailable(f"cannot reach Janus at {url}: {exc}") from exc
        session = cls(ws, api_secret, request_timeout=request_timeout)
        try:
            answer = await session._request({"janus": "create"})
        except BaseException:
            await session._shut("not created")
            raise
        session.id = int(answer["data"]["id"])
        session._keepalive = asyncio.create_task(
            session._keep_alive(keepalive_interval), name="janus-keepalive"
        )
        logger.info("Janus session %s open on %s", session.id, url)
        return session

    async def attach_videoroom(self) -> VideoRoomHandle:
        """A new handle on the VideoRoom plugin: one per PeerConnection, one to manage rooms."""
        answer = await self._request({"janus": "attach", "plugin": _PLUGIN})
        handle = VideoRoomHandle(self, int(answer["data"]["id"]))
        self._handles[handle.id] = handle
        return handle

    async def server_info(self) -> dict[str, Any]:
        """Janus's ``info``: its version, and the plugins and transports it loaded."""
        return await self._request({"janus": "info"}, in_session=False)

    async def close(self) -> None:
        """Destroy the session in Janus and close the socket (idempotent)."""
        if self.closed.is_set():
            return
        if self.id is not None:
            with contextlib.suppress(JanusError):
                await self._request({"janus": "destroy"}, within=2.0)
        await self._shut("session closed")

    # --- requests --------------------------------------------------------------------

    async def _request(
        self,
        payload: dict[str, Any],
        *,
        handle: int | None = None,
        settle_on_ack: bool = False,
        in_session: bool = True,
        within: float | None = None,
    ) -> dict[str, Any]:
        """Send ``payload`` and return the message that settles it.

        ``ack`` settles only ``settle_on_ack`` requests (keepalive, trickle, detach);
        any other waits for ``success`` or the plugin's ``event``. An ``error`` raises.
        """
        if self.closed.is_set():
            raise JanusUnavailable("the Janus session is closed")
        transaction = f"t{next(self._ids)}-{secrets.token_hex(4)}"
        message = {**payload, "transaction": transaction}
        if self._secret is not None:
            message["apisecret"] = self._secret
        if self.id is not None and in_session:
            message["session_id"] = self.id
        if handle is not None:
            message["handle_id"] = handle
        future: asyncio.Future[dict[str, Any]] = asyncio.get_running_loop().create_future()
        self._pending[transaction] = future
        if settle_on_ack:
            self._settle_on_ack.add(transaction)
        verb = payload["janus"]
        request = payload.get("body", {}).get("request")
        logger.debug("-> %s%s handle=%s", verb, f"/{request}" if request else "", handle)
        try:
            await self._ws.send(json.dumps(message))
            answer = await asyncio.wait_for(future, within or self._timeout)
        except ConnectionClosed as exc:
            raise JanusUnavailable("the socket to Janus closed") from exc
        except TimeoutError:
            raise JanusUnavailable(f"Janus did not answer {verb} in time") from None
        finally:
            self._pending.pop(transaction, None)
            self._settle_on_ack.discard(transaction)
        if answer.get("janus") == "error":
            error = answer.get("error", {})
            raise JanusError(str(error.get("reason", "error")), _int(error.get("code")))
        data = answer.get("plugindata", {}).get("data", {})
        if "error_code" in data or "error" in data:
            raise JanusError(str(data.get("error", "error")), _int(data.get("error_code")))
        return answer

    async def _read(self) -> None:
        try:
            async for raw in self._ws:
                try:
                    message = json.loads(raw)
                except ValueError:
                    logger.warning("Janus sent a frame that is not JSON; ignored")
                    continue
                if isinstance(message, dict):
                    self._dispatch(message)
                if self.closed.is_set():
                    break  # the session timed out in Janus: nothing more will come
        except ConnectionClosed:
            pass
        finally:
            await self._shut("the socket to Janus closed")

    def _dispatch(self, message: dict[str, Any]) -> None:
        kind = message.get("janus")
        transaction = str(message.get("transaction"))
        future = self._pending.get(transaction)
        if future is not None and not future.done():
            if kind != "ack" or transaction in self._settle_on_ack:
                future.set_result(message)
            return
        if kind == "timeout":
            # Keepalives stopped reaching Janus (the loop stalled 60 s?): the session and
            # every handle in it are gone there; :meth:`_read` shuts ours.
            logger.warning("Janus session %s timed out", self.id)
            self.closed.set()
            return
        sender = message.get("sender")
        handle = self._handles.get(sender) if isinstance(sender, int) else None
        if handle is None:
            return
        event = parse_event(message)
        if event is not None:
            handle._deliver(event)
            if isinstance(event, Detached):
                self._handles.pop(handle.id, None)

    async def _keep_alive(self, interval: float) -> None:
        while not self.closed.is_set():
            await asyncio.sleep(interval)
            try:
                await self._request({"janus": "keepalive"}, settle_on_ack=True)
            except JanusError as exc:
                logger.warning("Janus keepalive failed: %s", exc.reason)

    async def _shut(self, reason: str) -> None:
        """Fail what waits, tell every handle, close the socket, stop the tasks."""
        self.closed.set()
        for future in self._pending.values():
            if not future.done():
                future.set_exception(JanusUnavailable(reason))
        self._pending.clear()
        for handle in self._handles.values():
            handle._deliver(Detached(reason))
        self._handles.clear()
        current = asyncio.current_task()
        for task in (self._keepalive, self._reader):
            if task is not None and task is not current:
                task.cancel()
        with contextlib.suppress(Exception):
            await asyncio.wait_for(self._ws.close(), 2.0)


# --- The VideoRoom handle ------------------------------------------------------------------


class VideoRoomHandle:
    """A handle on the VideoRoom plugin: manages rooms, or carries one PeerConnection.

    A handle is either a publisher (:meth:`join_publisher` then :meth:`publish`) or a
    subscriber (:meth:`subscribe` then :meth:`start`), as in Janus; room management
    (:meth:`create_room`, :meth:`destroy_room`) works on any handle.
    """

    def __init__(self, session: JanusSession, handle_id: int) -> None:
        self.session = session
        self.id = handle_id
        self._events: asyncio.Queue[Event] = asyncio.Queue(_EVENTS_KEPT)

    async def _message(
        self, body: dict[str, Any], jsep: dict[str, Any] | None = None
    ) -> dict[str, Any]:
        payload: dict[str, Any] = {"janus": "message", "body": body}
        if jsep is not None:
            payload["jsep"] = jsep
        return await self.session._request(payload, handle=self.id)

    # --- rooms -----------------------------------------------------------------------

    async def create_room(
        self,
        room: str,
        *,
        secret: str,
        description: str | None = None,
        publishers: int = 6,
        bitrate: int = 0,
        audiocodec: str = "opus",
        videocodec: str = "vp8",
        notify_joining: bool = True,
    ) -> None:
        """Create VideoRoom ``room``, which only ``secret`` may edit or destroy.

        Not ``permanent``: the room lives in Janus's memory only, so a restart leaves no
        ghost. ``bitrate`` 0 leaves the publishers' REMB cap to Janus's default.
        ``require_pvtid`` keeps a subscriber from claiming a publisher's ``private_id``
        it was not given. Raises :class:`JanusError` 427 if the room exists.
        """
        body: dict[str, Any] = {
            "request": "create",
            "room": room,
            "secret": secret,
            "permanent": False,
            "publishers": publishers,
            "audiocodec": audiocodec,
            "videocodec": videocodec,
            "notify_joining": notify_joining,
            "require_pvtid": True,
            "is_private": True,
        }
        if description is not None:
            body["description"] = description
        if bitrate:
            body["bitrate"] = bitrate
        await self._message(body)

    async def destroy_room(self, room: str, *, secret: str) -> None:
        """Destroy ``room``: Janus hangs up every participant in it."""
        await self._message({"request": "destroy", "room": room, "secret": secret})

    async def room_exists(self, room: str) -> bool:
        """Whether ``room`` exists in this Janus."""
        answer = await self._message({"request": "exists", "room": room})
        return bool(answer["plugindata"]["data"].get("exists"))

    async def participants(self, room: str) -> list[str]:
        """The ids of the participants in ``room`` (publishing or not)."""
        answer = await self._message({"request": "listparticipants", "room": room})
        return [str(p["id"]) for p in answer["plugindata"]["data"].get("participants", ())]

    async def publishers(self, room: str) -> list[str]:
        """The ids of the participants in ``room`` that publish media."""
        answer = await self._message({"request": "listparticipants", "room": room})
        entries = answer["plugindata"]["data"].get("participants", ())
        return [str(p["id"]) for p in entries if p.get("publisher")]

    # --- publisher -------------------------------------------------------------------

    async def join_publisher(
        self, room: str, *, id: str, display: str | None = None, token: str | None = None
    ) -> Joined:
        """Join ``room`` as publisher ``id`` (not publishing yet): who already publishes.

        Raises :class:`JanusError` 426 for no such room, 436 if ``id`` is taken.
        """
        body: dict[str, Any] = {"request": "join", "ptype": "publisher", "room": room, "id": id}
        if display is not None:
            body["display"] = display
        if token is not None:
            body["token"] = token
        answer = await self._message(body)
        joined = parse_event(answer)
        if not isinstance(joined, Joined):
            raise JanusError("the join was not answered with joined")
        return joined

    async def publish(
        self,
        offer_sdp: str,
        *,
        trickle: bool = False,
        descriptions: Mapping[str, str] | None = None,
    ) -> str:
        """Send the publisher's SDP offer; return Janus's answer.

        ``trickle=False`` tells Janus every candidate is in the offer (aiortc's way).
        ``descriptions``: mid -> what the stream is (e.g. ``screen``), which Janus lists
        with the publisher's streams and gives each subscriber (``feed_description``).
        """
        body: dict[str, Any] = {"request": "publish"}
        if descriptions:
            body["descriptions"] = [
                {"mid": mid, "description": text} for mid, text in sorted(descriptions.items())
            ]
        answer = await self._message(body, {"type": "offer", "sdp": offer_sdp, "trickle": trickle})
        return _sdp(answer, "answer")

    async def unpublish(self) -> None:
        """Stop publishing; the handle stays in the room."""
        await self._message({"request": "unpublish"})

    # --- subscriber ------------------------------------------------------------------

    async def subscribe(
        self,
        room: str,
        feeds: list[str],
        *,
        private_id: int | None = None,
        only: Mapping[str, Sequence[str]] | None = None,
    ) -> Subscription:
        """Join ``room`` as a subscriber to ``feeds`` (publisher ids), all in one
        PeerConnection: Janus's SDP offer and which feed is on which mid.

        ``private_id`` is the subscribing member's own publisher handle's (from
        :class:`~tavkit.server.sfu.videoroom.Joined`), which the rooms require
        (``require_pvtid``). ``only``: for the feeds it names, just these of their
        streams (publisher mids); the other feeds whole. Answer with :meth:`start`.
        """
        wanted: list[dict[str, str]] = []
        for feed in feeds:
            mids = (only or {}).get(feed)
            if mids is None:
                wanted.append({"feed": feed})
            else:
                wanted.extend({"feed": feed, "mid": mid} for mid in mids)
        body: dict[str, Any] = {
            "request": "join",
            "ptype": "subscriber",
            "room": room,
            "streams": wanted,
        }
        if private_id is not None:
            body["private_id"] = private_id
        answer = await self._message(body)
        data = answer.get("plugindata", {}).get("data", {})
        return Subscription(
            room=room,
            offer=_sdp(answer, "offer"),
            streams=tuple(FeedStream.parse(s) for s in data.get("streams", ()) if "feed_id" in s),
        )

    async def configure_streams(self, streams: list[dict[str, Any]]) -> None:
        """Change what a subscriber handle forwards, per stream of its PeerConnection.

        Each entry names a ``mid`` of the subscription and says ``send`` (False pauses
        the stream) and/or ``substream`` (the simulcast layer: 0 the lowest, 2 the
        highest, whatever order the publisher listed its rids in).
        """
        await self._message({"request": "configure", "streams": streams})

    async def start(self, answer_sdp: str, *, trickle: bool = False) -> None:
        """Send the subscriber's SDP answer: Janus starts forwarding."""
        await self._message(
            {"request": "start"}, {"type": "answer", "sdp": answer_sdp, "trickle": trickle}
        )

    # --- both ------------------------------------------------------------------------

    async def trickle(self, candidate: str, sdp_mid: str | None, sdp_mline_index: int) -> None:
        """Send one ICE candidate (``candidate:...``) gathered after the SDP went."""
        entry: dict[str, Any] = {"candidate": candidate, "sdpMLineIndex": sdp_mline_index}
        if sdp_mid is not None:
            entry["sdpMid"] = sdp_mid
        await self.session._request(
            {"janus": "trickle", "candidate": entry}, handle=self.id, settle_on_ack=True
        )

    async def trickle_complete(self) -> None:
        """Say no more candidates will come."""
        await self.session._request(
            {"janus": "trickle", "candidate": {"completed": True}},
            handle=self.id,
            settle_on_ack=True,
        )

    async def leave(self) -> None:
        """Leave the room (a publisher also stops publishing)."""
        await self._message({"request": "leave"})

    async def hangup(self) -> None:
        """Close this handle's PeerConnection; the handle stays attached."""
        await self.session._request({"janus": "hangup"}, handle=self.id, settle_on_ack=False)

    async def detach(self) -> None:
        """Detach the handle (it leaves its room and its PeerConnection closes)."""
        self.session._handles.pop(self.id, None)
        await self.session._request({"janus": "detach"}, handle=self.id)

    async def next_event(self, within: float) -> Event:
        """The next event for this handle; ``TimeoutError`` after ``within`` seconds."""
        return await asyncio.wait_for(self._events.get(), within)

    async def wait_for(self, kind: type[Event], within: float) -> Event:
        """Skip events until one of ``kind``; ``TimeoutError`` after ``within`` seconds."""
        async with asyncio.timeout(within):
            while True:
                event = await self._events.get()
                if isinstance(event, kind):
                    return event

    def _deliver(self, event: Event) -> None:
        try:
            self._events.put_nowait(event)
        except asyncio.QueueFull:
            # Nobody reads this handle's events: the oldest say least.
            self._events.get_nowait()
            self._events.put_nowait(event)


def _sdp(answer: Mapping[str, Any], kind: Literal["offer", "answer"]) -> str:
    jsep = answer.get("jsep")
    if not isinstance(jsep, Mapping) or jsep.get("type") != kind or "sdp" not in jsep:
        raise JanusError(f"Janus sent no SDP {kind}")
    return str(jsep["sdp"])


def _int(value: object) -> int | None:
    return value if isinstance(value, int) else None
