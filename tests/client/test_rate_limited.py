"""The Python client against a server that says "not now" or "no": 429s and refused sockets.

Real servers with tight limits: ``enter`` waits out a 429's ``Retry-After`` and gets in,
a wait longer than its patience is raised at once (one request, no hammering), the
heartbeat skips beats while limited and the call goes on; ``start()`` has a deadline
(trtc -1019, the place given back) and a socket refused after ``enter`` fails it at once;
a server that drops every membership as soon as it is made ends the call instead of
being entered again forever.
"""

from __future__ import annotations

import asyncio
import itertools
import time
from dataclasses import dataclass
from typing import Any

import httpx
import pytest

from tavkit.client import kit as kit_module
from tavkit.client.api import Credentials, RateLimitedError, RoomApi
from tavkit.errors import ServerError, TrtcError
from tavkit.server import create_app

from ._util import RecordingListener, enter, make_kit, until


@dataclass(frozen=True)
class Answer:
    """One request the client made and what came back."""

    path: str
    status: int
    at: float
    retry_after: float | None


class Recorder(httpx.AsyncHTTPTransport):
    """Plain HTTP that notes every request and answer (what the client really did)."""

    def __init__(self) -> None:
        super().__init__()
        self.answers: list[Answer] = []

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        response = await super().handle_async_request(request)
        header = response.headers.get("Retry-After")
        self.answers.append(
            Answer(
                request.url.path,
                response.status_code,
                time.monotonic(),
                float(header) if header is not None else None,
            )
        )
        return response

    def to(self, suffix: str) -> list[Answer]:
        """The answers to paths ending with ``suffix``."""
        return [a for a in self.answers if a.path.endswith(suffix)]


async def test_enter_waits_out_a_429_and_gets_in(sqlite_server_factory: Any) -> None:
    """Past the address bucket (2 at once, 1 a second) the third enter is answered 429;
    the client waits its Retry-After, asks once more and is in."""
    server = sqlite_server_factory(address_rate=1.0, address_burst=2.0)
    recorder = Recorder()
    api = RoomApi(
        server.url, Credentials(server.app_id, "ann", server.sig("ann")), transport=recorder
    )
    try:
        for _ in range(3):
            entered = await api.enter(501)
            assert entered.room_id == 501
    finally:
        await api.aclose()
    statuses = [a.status for a in recorder.to("/enter")]
    assert statuses[:2] == [200, 200] and statuses[-1] == 200
    limited = [a for a in recorder.to("/enter") if a.status == 429]
    assert limited, statuses
    # Each retry came after the wait the server asked for, never sooner.
    answers = recorder.to("/enter")
    for before, after in itertools.pairwise(answers):
        if before.status == 429:
            assert before.retry_after is not None
            assert after.at - before.at >= before.retry_after * 0.9


async def test_a_wait_past_the_patience_is_raised_at_once(sqlite_server_factory: Any) -> None:
    """A user at their cap of new sessions (one a minute) is told to wait 60 s: more than
    ``rate_limit_wait``, so enter raises server 10004 after that one request."""
    server = sqlite_server_factory(sessions_per_minute=1)
    recorder = Recorder()
    credentials = Credentials(server.app_id, "bea", server.sig("bea"))
    api = RoomApi(server.url, credentials, rate_limit_wait=5.0, transport=recorder)
    try:
        await api.enter(502)
        with pytest.raises(RateLimitedError) as caught:
            await api.enter(503)
    finally:
        await api.aclose()
    assert isinstance(caught.value, ServerError) and caught.value.error_code == 10004
    assert caught.value.retry_after == 60
    assert [a.status for a in recorder.to("/rooms/503/enter")] == [429]


async def test_the_heartbeat_skips_beats_while_limited_and_the_call_goes_on(
    sqlite_server_factory: Any,
) -> None:
    """Heartbeats every 0.2 s against an address bucket of one a second: the 429s come,
    and after each the kit sends no REST heartbeat until its Retry-After has passed; the
    socket's pings keep the place, so nobody is timed out and no error is reported."""
    server = sqlite_server_factory(
        heartbeat_interval=0.2, heartbeat_timeout=3.0, address_rate=1.0, address_burst=3.0
    )
    recorder = Recorder()
    events = RecordingListener()
    async with make_kit(server.url, transport=recorder, reporting=False) as kit:
        await enter(kit, server, "cleo", 504, events)
        await until(
            lambda: len([a for a in recorder.to("/heartbeat") if a.status == 429]) >= 2,
            "two heartbeats answered 429",
        )
        await asyncio.sleep(1.5)  # let more beats come due while limited
        assert not kit.closed and events.errors() == []
    beats = recorder.to("/heartbeat")
    for before, after in itertools.pairwise(beats):
        if before.status == 429:
            assert before.retry_after is not None
            assert after.at - before.at >= before.retry_after * 0.9, beats
    sql = "SELECT leave_reason FROM members WHERE user_id = 'cleo'"
    assert server.database.execute(sql) in ([(None,)], [("exit",)])


STALL = 5.0
"""Seconds the stalled socket's handshake hangs (start_timeout is 1 s)."""


def stalled_socket(settings: Any) -> Any:
    """The tavkit app, except that the signaling socket's handshake hangs, then fails."""
    app = create_app(settings)

    async def serve(scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] == "websocket":
            await asyncio.sleep(STALL)  # well past start_timeout, then refused (403)
            return
        await app(scope, receive, send)

    return serve


async def test_start_fails_at_its_deadline_and_gives_the_place_back(
    sqlite_server_factory: Any,
) -> None:
    """The socket's handshake hangs: start() gives up at start_timeout with trtc -1019,
    reports it to on_error, and exits the room it had entered."""
    server = sqlite_server_factory(app_factory=stalled_socket)
    events = RecordingListener()
    async with make_kit(server.url, start_timeout=1.0, reporting=False) as kit:
        with pytest.raises(TrtcError) as caught:
            await enter(kit, server, "dan", 505, events)
        assert caught.value.error_code == -1019
        assert [(e["module"], e["errorCode"]) for e in events.errors()] == [("trtc", -1019)]
        assert kit.closed
    sql = "SELECT leave_reason FROM members WHERE user_id = 'dan'"
    assert server.database.execute(sql) == [("exit",)]


async def test_a_socket_refused_after_enter_fails_start_at_once(sqlite_server_factory: Any) -> None:
    """enter hands out a socket URL whose server does not know the token: start() raises
    the refusal (server 10005) at once, and the place taken is given back."""
    other = sqlite_server_factory()
    server = sqlite_server_factory(public_url=other.url)
    events = RecordingListener()
    async with make_kit(server.url, reporting=False) as kit:
        with pytest.raises(ServerError) as caught:
            await enter(kit, server, "eve", 506, events)
        assert caught.value.error_code == 10005
        assert kit.closed
    sql = "SELECT leave_reason FROM members WHERE user_id = 'eve'"
    assert server.database.execute(sql) == [("exit",)]


def dropping_socket(settings: Any) -> Any:
    """The tavkit app, except that every socket is closed 4401 right after its welcome."""
    app = create_app(settings)

    async def serve(scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] != "websocket":
            await app(scope, receive, send)
            return
        sent = 0

        async def send_then_drop(message: Any) -> None:
            nonlocal sent
            if sent and message["type"] in ("websocket.send", "websocket.close"):
                return  # the socket is closed already
            await send(message)
            if message["type"] == "websocket.send":
                sent += 1
                await send({"type": "websocket.close", "code": 4401})

        await app(scope, receive, send_then_drop)

    return serve


async def test_a_server_that_drops_every_membership_ends_the_call(
    sqlite_server_factory: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Each enter works and each socket is refused right after its welcome: the kit
    enters again a few times, with growing pauses, then gives up with trtc -1019 and
    the call ends (patience shortened to 3 s for the test)."""
    monkeypatch.setattr(kit_module, "REJOIN_PATIENCE", 3.0)
    server = sqlite_server_factory(app_factory=dropping_socket)
    events = RecordingListener()
    recorder = Recorder()
    async with make_kit(server.url, reporting=False, transport=recorder) as kit:
        await enter(kit, server, "fay", 507, events)
        await until(lambda: kit.closed, "the kit gives up")
    codes = [(e["module"], e["errorCode"]) for e in events.errors()]
    assert codes[-1] == ("trtc", -1019)
    assert 2 <= len(recorder.to("/enter")) <= 8, codes
