"""One simulated participant: REST enter, a raw signaling socket, and scripted traffic.

It speaks the wire protocol directly (JSON dicts, ``docs/protocol.md`` sections 2 and
5) rather than through :class:`tavkit.client.TAvKit`, so thousands fit in one
process: no media, no peer connections, one socket and two small tasks each.

Its life::

    enter -> socket -> welcome --- hold: ping every heartbeatInterval, traffic ---+
       ^                                                                          |
       +-- token refused (4401) / membership ended (4002, 4003): enter again     |
       +-- socket dropped (1006, 1012, ...): reconnect with the same token <------+
                                                      leave -> close 1000 -> done

Latencies use this process's monotonic clock: every probe (``ping.t``, the signal's
``sdpMid``, the message's ``data.lt``) carries its send time and the receiver, in the
same process, subtracts it from its receive time.

Behind a load balancer each participant notes the replica that answered its ``enter``
and the one holding its socket (the ``X-Tavkit-Replica`` header of the answer and of
the WebSocket handshake), so a signal or message between two participants counts as
same-replica or cross-replica (through Redis). A socket closed with 1012 (its replica
draining) is a drop like any other, and also counted as ``moved``.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import random
import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Final, Literal
from urllib.parse import quote

import httpx
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed, InvalidHandshake, InvalidURI
from websockets.frames import CloseCode as WsCloseCode
from websockets.typing import Subprotocol

from tavkit.auth import gen_user_sig
from tavkit.client.session import SIGNAL_PAUSE, SIGNAL_TRIES
from tavkit.protocol import CloseCode

if TYPE_CHECKING:
    from tavkit.loadtest.config import LoadConfig
    from tavkit.loadtest.report import Recorder

__all__ = ["Participant", "Shared"]

logger = logging.getLogger(__name__)

_SIGNAL_TAG: Final = "lt:"
_MAX_BACKOFF: Final = 2.0
# A socket that ended without a close frame reports no code; RFC 6455 calls that 1006.
_CLOSE_UNKNOWN: Final = int(WsCloseCode.ABNORMAL_CLOSURE)
_MEMBERSHIP_ENDED: Final = frozenset({CloseCode.REMOVED, CloseCode.ROOM_CLOSED})
_REPLICA_HEADER: Final = "x-tavkit-replica"

Outcome = Literal["ok", "refused", "failed"]


@dataclass
class Shared:
    """What every participant of a run shares: settings, counters, the HTTP pool, phases."""

    config: LoadConfig
    recorder: Recorder
    http: httpx.AsyncClient
    traffic: asyncio.Event = field(default_factory=asyncio.Event)
    """Set when everyone has joined: signals and messages may flow."""
    traffic_until: float = 0.0
    """Loop time at which traffic stops."""
    room_sims: dict[int, list[str]] = field(default_factory=dict)
    """The simulated participants of each room (what a message's fan-out should reach)."""
    messages_note: str | None = None
    """Why messages were skipped, when the server does not speak them."""
    socket_replicas: dict[str, str] = field(default_factory=dict)
    """The replica holding each participant's socket now (userId to replica name)."""
    rest_slots: asyncio.Semaphore | None = None
    """Bounds REST calls in flight to the pool size: httpx's pool spends CPU per queued call."""

    @property
    def messages_on(self) -> bool:
        """Whether to send chat messages (configured, and the server understands them)."""
        return self.config.messages > 0 and self.recorder.messages_supported is not False

    def no_messages(self, note: str) -> None:
        """The server does not support ``message``: stop sending them, once, with a note."""
        if self.recorder.messages_supported is not False:
            logger.warning("messages skipped: %s", note)
        self.recorder.messages_supported = False
        self.messages_note = note


class Participant:
    """A simulated member of one room, driven by :meth:`live` and ended by :meth:`leave`."""

    def __init__(self, shared: Shared, index: int) -> None:
        config = shared.config
        self.shared = shared
        self.index = index
        self.user_id = config.user_id(index)
        self.room_id = config.room_of(index)
        self._rec = shared.recorder
        self._headers = {
            "X-TAvKit-SdkAppId": str(config.sdk_app_id),
            "X-TAvKit-UserId": self.user_id,
            "X-TAvKit-UserSig": gen_user_sig(config.sdk_app_id, config.key, self.user_id),
        }
        self.room_uuid: str | None = None
        self.enter_replica: str | None = None
        """The replica that answered the last successful ``enter`` (None: not named)."""
        self.socket_replica: str | None = None
        """The replica holding the socket now (None: not named, or no socket)."""
        self.others: set[str] = set()
        self.in_room = False
        self.ready = asyncio.Event()
        """Set once the first join succeeded or was given up."""
        self.done = asyncio.Event()
        self._token: str | None = None
        self._socket_url = ""
        self._interval = config.heartbeat_interval or 5.0
        self._ws: ClientConnection | None = None
        self._leaving = False
        self._fresh = False
        self._aborted = False
        self._tasks: list[asyncio.Task[None]] = []
        self._sent = 0
        self._syncs = 0
        self._connected = False
        self._syncing = False
        self._unacked: dict[str, str] = {}
        self._signals: dict[str, tuple[str, int]] = {}  # id -> (frame, sends): refusable
        self._signal_n = 0
        self._seen: set[tuple[str, int]] = set()
        self._got: set[tuple[str, str]] = set()  # (from, clientMsgId) of every delivery
        self._contiguous: dict[str, int] = {}
        self._ahead: dict[str, set[int]] = {}

    # -- life ------------------------------------------------------------------------------

    async def live(self) -> None:
        """Join, then hold the socket until :meth:`leave`, getting back after every drop."""
        loop = asyncio.get_running_loop()
        started = loop.time()
        try:
            joined = await self._get_back(started + self.shared.config.recovery_timeout)
            if not joined:
                if not self._leaving:  # gave up joining (not merely stopped by the end)
                    self._rec.failed += 1
                return
            self._rec.join.append(loop.time() - started)
            self.ready.set()
            self._tasks = [
                asyncio.create_task(self._heartbeat(), name=f"{self.user_id} heartbeat"),
                asyncio.create_task(self._traffic(), name=f"{self.user_id} traffic"),
            ]
            await self._hold_until_left()
        finally:
            self.ready.set()
            for task in self._tasks:
                task.cancel()
            self._set_in_room(False)
            self.done.set()

    async def leave(self) -> None:
        """Send ``leave`` and wait for the server's close 1000 (or hang up on a lost socket).

        A participant that never got its socket (still trying to join) just stops; the
        runner cancels it, and the report shows it as not joined rather than as an error.
        """
        self._leaving = True
        for task in self._tasks:
            task.cancel()
        ws = self._ws
        if ws is None or self.done.is_set():
            return
        if not await self._send({"type": "leave"}):
            with contextlib.suppress(ConnectionClosed, OSError):
                await ws.close()
        wait = self.shared.config.timeout
        try:
            async with asyncio.timeout(wait):
                await self.done.wait()
        except TimeoutError:
            self._rec.error("close:none", f"{self.user_id}: no close within {wait:g} s of leave")
            self._aborted = True
            ws.transport.abort()

    def outstanding(self) -> int:
        """Messages sent but not yet acknowledged by the server."""
        return len(self._unacked)

    @property
    def getting_back(self) -> bool:
        """Between a dropped socket and the next ``welcome``, still trying (not given up)."""
        return not self._connected and not self.done.is_set()

    def settled(self) -> bool:
        """Nothing of ours in flight: socket open, every send acknowledged, no sync pending.

        Only then are this participant's deliveries final: one still getting back (or
        waiting for its ``sync`` reply) has yet to receive what it missed while away.
        A participant whose life ended (left, or gave up) is settled.
        """
        if self.done.is_set():
            return True
        return self._connected and not self._syncing and not self._unacked

    def deliveries(self) -> frozenset[tuple[str, int]]:
        """Every (session uuid, seq) received from someone else, each once."""
        return frozenset(self._seen)

    async def _hold_until_left(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            code = await self._hold()
            if self._leaving:
                if code != CloseCode.NORMAL and not self._aborted:
                    self._rec.error(f"close:{code}", f"{self.user_id}: after leave")
                return
            self._rec.drops += 1
            if code == CloseCode.SERVICE_RESTART:
                self._rec.moved += 1
            self._rec.error(f"close:{code}", f"{self.user_id}: socket closed by the server/network")
            if code == CloseCode.REPLACED:  # someone else is this user now: fighting back loops
                self._rec.failed += 1
                return
            if code in _MEMBERSHIP_ENDED:
                self._token = None
            if not await self._get_back(loop.time() + self.shared.config.recovery_timeout):
                if not self._leaving:
                    self._rec.failed += 1
                return

    async def _hold(self) -> int:
        """Read frames until the socket closes; return its close code."""
        ws = self._ws
        assert ws is not None
        with contextlib.suppress(ConnectionClosed):
            async for raw in ws:
                self._on_frame(raw)
        self._connected = False
        self._syncing = False  # a reply that did not finish is asked for again on resume
        self._rec.connected -= 1
        return _close_code(ws)

    async def _get_back(self, deadline: float) -> bool:
        """Enter (unless we hold a token) and open the socket, retrying until ``deadline``."""
        loop = asyncio.get_running_loop()
        delay = 0.2
        self._fresh = False
        while not self._leaving:
            if self._token is None:
                await self._enter()
            if self._token is not None:
                outcome = await self._connect()
                if outcome == "ok":
                    return True
                if outcome == "refused":
                    self._token = None
                    continue  # enter again right away
            if loop.time() >= deadline:
                return False
            await asyncio.sleep(delay * (0.5 + random.random()))
            delay = min(delay * 2, _MAX_BACKOFF)
        return False

    # -- REST and socket -------------------------------------------------------------------

    async def _enter(self) -> None:
        path = f"/v1/rooms/{self.room_id}/enter"
        slots = self.shared.rest_slots or contextlib.nullcontext()
        try:
            async with slots:
                response = await self.shared.http.post(path, headers=self._headers, json={})
        except httpx.HTTPError as exc:
            self._rec.error("http:10000", f"enter: {type(exc).__name__} {exc}")
            return
        body = _json(response)
        if response.status_code != 200 or body is None or "socketToken" not in body:
            if body is not None and "errorCode" in body:
                self._rec.seed_error(body, f"enter HTTP {response.status_code}")
            else:
                self._rec.error("http:10000", f"enter: HTTP {response.status_code}")
            return
        if self.in_room and self.room_uuid is not None:
            self._rec.reentered += 1
        self.enter_replica = response.headers.get(_REPLICA_HEADER)
        if self.enter_replica is not None:
            self._rec.enter_replicas[self.enter_replica] += 1
        self.room_uuid = str(body["roomUuid"])
        self._token = str(body["socketToken"])
        self._socket_url = str(body["socketUrl"])
        if self.shared.config.heartbeat_interval is None:
            self._interval = float(body.get("heartbeatInterval", self._interval))
        self._fresh = True
        self._set_in_room(True)

    async def _connect(self) -> Outcome:
        """Open the socket with our token; on ``welcome`` the socket is ours."""
        assert self._token is not None
        resuming = self._ws is not None and not self._fresh
        # The token rides in the handshake header, as tavkit's clients send it.
        offered = [
            Subprotocol("tavkit.v1"),
            Subprotocol(f"tavkit.token.{quote(self._token, safe='')}"),
        ]
        timeout = self.shared.config.timeout
        try:
            ws = await connect(
                self._socket_url,
                subprotocols=offered,
                open_timeout=timeout,
                ping_interval=None,  # liveness is our own ping frame, as the contract says
                close_timeout=2.0,
                compression=None,
                max_size=1 << 20,
            )
        except (OSError, TimeoutError, InvalidHandshake, InvalidURI) as exc:
            self._rec.error("http:10000", f"socket open: {type(exc).__name__} {exc}")
            return "failed"
        try:
            async with asyncio.timeout(timeout):
                first = json.loads(await ws.recv())
        except (TimeoutError, ConnectionClosed, ValueError) as exc:
            if ws.close_code == CloseCode.SERVICE_RESTART:  # a draining replica: try again
                self._rec.error(f"close:{ws.close_code}", f"{self.user_id}: socket refused")
            else:
                self._rec.error("http:10000", f"no welcome: {type(exc).__name__} {exc}")
            ws.transport.abort()
            return "failed"
        if not isinstance(first, dict) or first.get("type") != "welcome":
            if isinstance(first, dict) and first.get("type") == "error":
                self._rec.seed_error(first, "socket refused")
            with contextlib.suppress(TimeoutError, ConnectionClosed):
                async with asyncio.timeout(2.0):
                    await ws.wait_closed()
            code = _close_code(ws)
            self._rec.error(f"close:{code}", f"{self.user_id}: socket refused")
            ws.transport.abort()
            return "refused" if code == CloseCode.UNAUTHORISED else "failed"
        self._ws = ws
        self._connected = True
        self._rec.connected += 1
        self.socket_replica = ws.response.headers.get(_REPLICA_HEADER) if ws.response else None
        if self.socket_replica is not None:
            self.shared.socket_replicas[self.user_id] = self.socket_replica
        self._welcome(first, resuming)
        return "ok"

    def _welcome(self, frame: dict[str, Any], resuming: bool) -> None:
        uuid = str(frame.get("roomUuid"))
        self.room_uuid = uuid
        self.others = {str(m["userId"]) for m in frame.get("members", [])}
        if resuming:
            self._rec.resumed += 1
        if "lastSeq" not in frame:
            if self.shared.config.messages:
                self.shared.no_messages("the server has no in-call messages (no welcome.lastSeq)")
            return
        self._rec.messages_supported = True
        if uuid not in self._contiguous:
            # A new session: what was said before we came is not for us.
            self._contiguous[uuid] = int(frame["lastSeq"])
            self._ahead[uuid] = set()
        elif self.shared.messages_on:
            # Back in the same session: fetch what we missed, resend what was not stored.
            # Until its ``synced`` arrives, what we were sent while away is still coming.
            self._syncs += 1
            self._syncing = True
            frame = {"type": "sync", "id": f"s:{self._syncs}", "after": self._contiguous[uuid]}
            self._send_later(frame)
        for text in self._unacked.values():
            self._send_later(text)

    # -- inbound ---------------------------------------------------------------------------

    def _on_frame(self, raw: str | bytes) -> None:
        now = time.monotonic()
        try:
            frame = json.loads(raw)
        except ValueError:
            self._rec.error("server:10003", f"{self.user_id}: a server frame is not JSON")
            return
        kind = frame.get("type") if isinstance(frame, dict) else None
        if kind == "pong":
            sent = frame.get("t")
            if isinstance(sent, int | float):
                self._rec.heartbeat.append(now - sent)
        elif kind == "signal":
            mid = _signal_tag(frame.get("data"))
            if mid is not None:
                with contextlib.suppress(ValueError):
                    took = now - float(mid)
                    self._rec.signal.append(took)
                    self._rec.signals_received += 1
                    self._by_replica(self._rec.signal_same, self._rec.signal_cross, frame, took)
        elif kind == "message":
            self._on_message(frame, now)
        elif kind == "synced":
            self._syncing = False
        elif kind == "member-joined":
            member = frame.get("member")
            if isinstance(member, dict):
                self.others.add(str(member.get("userId")))
        elif kind == "member-left":
            self.others.discard(str(frame.get("userId")))
        elif kind == "error":
            self._on_error(frame)

    def _on_message(self, frame: dict[str, Any], now: float) -> None:
        uuid = self.room_uuid or ""
        seq = frame.get("seq")
        if not isinstance(seq, int):
            return
        self._advance(uuid, seq)
        if frame.get("from") == self.user_id:
            cid = frame.get("clientMsgId")
            if isinstance(cid, str) and self._unacked.pop(cid, None) is not None:
                self._rec.messages_acked += 1
                self._rec.messages_expected += len(self.shared.room_sims[self.room_id]) - 1
            return
        if (uuid, seq) in self._seen:
            return  # live and again in a sync reply
        self._seen.add((uuid, seq))
        sent_as = (str(frame.get("from")), str(frame.get("clientMsgId")))
        if sent_as in self._got:
            # One send stored twice (its sender resent it into a new session after the
            # old one ended unacknowledged): a user would see it twice. Counted once.
            self._rec.error("message:duplicate", f"{self.user_id}: {sent_as[1]} again, seq {seq}")
            return
        self._got.add(sent_as)
        data = frame.get("data")
        if isinstance(data, dict) and isinstance(data.get("lt"), int | float):
            took = now - float(data["lt"])
            self._rec.messages_received += 1
            self._rec.message.append(took)
            self._by_replica(self._rec.message_same, self._rec.message_cross, frame, took)

    def _by_replica(
        self, same: list[float], cross: list[float], frame: dict[str, Any], took: float
    ) -> None:
        """File a latency under same- or cross-replica, when both replicas are named."""
        theirs = self.shared.socket_replicas.get(str(frame.get("from")))
        if theirs is None or self.socket_replica is None:
            return
        (same if theirs == self.socket_replica else cross).append(took)

    def _advance(self, uuid: str, seq: int) -> None:
        """Track the highest seq delivered without a gap, for the ``sync`` after a resume."""
        if uuid not in self._contiguous:
            return
        ahead = self._ahead[uuid]
        ahead.add(seq)
        while self._contiguous[uuid] + 1 in ahead:
            self._contiguous[uuid] += 1
            ahead.discard(self._contiguous[uuid])
        ahead.difference_update({s for s in ahead if s <= self._contiguous[uuid]})

    def _on_error(self, frame: dict[str, Any]) -> None:
        ref = frame.get("ref")
        unknown_type = (
            isinstance(ref, str)
            and ref.startswith("m:")
            and frame.get("errorCode") == 10004
            and "type" in str(frame.get("errorMsg", "")).lower()
            and not self._rec.messages_acked
        )
        if unknown_type:
            self.shared.no_messages(
                f"the server refused the message frame: {frame.get('errorMsg')}"
            )
            self._unacked.clear()
            return
        if isinstance(ref, str) and ref.startswith("g:") and self._shed(ref, frame):
            return
        if isinstance(ref, str) and ref.startswith("s:"):
            self._syncing = False  # refused: no `synced` will come (counted as an error below)
        self._rec.seed_error(frame, f"{self.user_id}: error frame (ref {ref})")

    # -- outbound --------------------------------------------------------------------------

    async def _heartbeat(self) -> None:
        await asyncio.sleep(self._interval * random.random())  # spread the herd
        while True:
            await self._send({"type": "ping", "t": time.monotonic()})
            await asyncio.sleep(self._interval)

    async def _traffic(self) -> None:
        shared = self.shared
        config = shared.config
        await shared.traffic.wait()
        loop = asyncio.get_running_loop()
        start = loop.time()
        span = max(shared.traffic_until - start, 0.0)
        plan: list[tuple[float, str]] = []
        if shared.messages_on:
            plan += [
                (start + random.uniform(0, span * 0.8), "message") for _ in range(config.messages)
            ]
        if config.signal_interval > 0:
            at = start + random.uniform(0, config.signal_interval)
            while at < shared.traffic_until:
                plan.append((at, "signal"))
                at += config.signal_interval
        for at, what in sorted(plan):
            await asyncio.sleep(max(at - loop.time(), 0.0))
            if what == "signal":
                await self._signal()
            elif shared.messages_on:
                await self._message()

    async def _signal(self) -> None:
        sims = self.shared.room_sims[self.room_id]
        targets = [uid for uid in sims if uid in self.others]
        if not targets:
            return
        probe = {
            "candidate": "",
            "sdpMid": f"{_SIGNAL_TAG}{time.monotonic():.6f}",
            "sdpMLineIndex": None,
        }
        self._signal_n += 1
        ref = f"g:{self._signal_n}"
        to = random.choice(targets)
        frame = json.dumps({"type": "signal", "to": to, "id": ref, "data": {"candidate": probe}})
        if await self._send(frame):
            self._rec.signals_sent += 1
            self._signals[ref] = (frame, 1)
            while len(self._signals) > 256:  # a refusal comes within a round trip
                del self._signals[next(iter(self._signals))]

    def _shed(self, ref: str, error: dict[str, Any]) -> bool:
        """A busy server refused signal ``ref``: send it again later, as the clients do.

        Counted as shed, not as an error (the server said so and nothing is lost), until
        :data:`~tavkit.client.session.SIGNAL_TRIES` sends were all refused.
        """
        kept = self._signals.get(ref)
        if kept is None or (error.get("module"), error.get("errorCode")) != ("server", 10000):
            return False
        self._rec.signals_shed += 1
        frame, sends = kept
        if sends >= SIGNAL_TRIES:
            del self._signals[ref]
            return False
        self._signals[ref] = (frame, sends + 1)

        async def later() -> None:
            await asyncio.sleep(random.uniform(*SIGNAL_PAUSE))
            await self._send(frame)

        task = asyncio.get_running_loop().create_task(later())
        task.add_done_callback(lambda t: t.exception() if not t.cancelled() else None)
        return True

    async def _message(self) -> None:
        self._sent += 1
        cid = f"{self.user_id}.{self._sent}"
        frame = {
            "type": "message",
            "id": f"m:{self._sent}",
            "clientMsgId": cid,
            "kind": "custom",
            "data": {"lt": time.monotonic()},
        }
        text = json.dumps(frame)
        self._unacked[cid] = text
        self._rec.messages_sent += 1
        await self._send(text)  # unsent ones go out again after the next welcome

    async def _send(self, frame: dict[str, Any] | str) -> bool:
        ws = self._ws
        if ws is None:
            return False
        try:
            await ws.send(frame if isinstance(frame, str) else json.dumps(frame))
        except ConnectionClosed:
            return False
        return True

    def _send_later(self, frame: dict[str, Any] | str) -> None:
        task = asyncio.get_running_loop().create_task(self._send(frame))
        task.add_done_callback(lambda t: t.exception() if not t.cancelled() else None)

    def _set_in_room(self, value: bool) -> None:
        if value != self.in_room:
            self.in_room = value
            self._rec.set_joined(1 if value else -1)


def _close_code(ws: ClientConnection) -> int:
    code = ws.close_code
    return _CLOSE_UNKNOWN if code is None else int(code)


def _signal_tag(data: Any) -> str | None:
    """The send time carried in a load-test signal, or None for any other signal."""
    if not isinstance(data, dict):
        return None
    candidate = data.get("candidate")
    if not isinstance(candidate, dict):
        return None
    mid = candidate.get("sdpMid")
    if isinstance(mid, str) and mid.startswith(_SIGNAL_TAG):
        return mid[len(_SIGNAL_TAG) :]
    return None


def _json(response: httpx.Response) -> dict[str, Any] | None:
    try:
        body = response.json()
    except ValueError:
        return None
    return body if isinstance(body, dict) else None
