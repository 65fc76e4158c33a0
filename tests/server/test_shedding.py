"""Load shedding on the signal relay, over a real server and real sockets.

A server whose event loop is behind refuses ``signal`` frames with server 10000
instead of queueing them; every frame is either relayed or answered, in order, and
relaying resumes once the loop has caught up. To put the server's loop behind on
purpose, the test makes it do nothing for a while (a blocking call on the server's
own loop), as a flood of work would.
"""

from __future__ import annotations

import asyncio
import json
import threading
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import httpx
import pytest
from websockets.asyncio.client import ClientConnection

from tavkit.client.session import SignalingSocket
from tavkit.protocol import CandidateData, IceCandidate, ServerMessage, SignalTo
from tavkit.server import Settings, create_app
from tavkit.server.context import ServerContext
from tavkit.server.signaling.shedding import LoopLag, shed_refusal

from .test_signaling import (
    LOOPBACK,
    TIMEOUT,
    Frame,
    assert_error,
    enter,
    frame,
    member,
    ping_t,
)

if TYPE_CHECKING:
    from conftest import RunningServer, ServerFactory

STALL = 0.15
"""How long each stall of the server's loop lasts (well past the shedding limit)."""
STALLS = 4


class CapturedApp:
    """Builds the real app and notes the server's event loop and context as it runs."""

    def __init__(self) -> None:
        self.loop: asyncio.AbstractEventLoop | None = None
        self.app: Any = None

    def build(self, settings: Settings) -> Callable[..., Any]:
        self.app = create_app(settings)

        async def asgi(scope: Any, receive: Any, send: Any) -> None:
            self.loop = asyncio.get_running_loop()
            await self.app(scope, receive, send)

        return asgi

    @property
    def ctx(self) -> ServerContext:
        ctx = self.app.state.tavkit
        assert isinstance(ctx, ServerContext)
        return ctx

    def stall(self, times: int = STALLS) -> threading.Event:
        """Stall the server's loop ``times`` times; the event is set as the first begins."""
        assert self.loop is not None
        started = threading.Event()
        lag = self.ctx.loop_lag

        def stall(left: int) -> None:
            lag.behind()  # anything ready from now on waits for the stall
            started.set()
            time.sleep(STALL)  # the point: the loop does nothing else meanwhile
            if left > 1:
                asyncio.get_running_loop().call_soon(stall, left - 1)

        self.loop.call_soon_threadsafe(stall, times)
        return started


@pytest.fixture
def captured() -> CapturedApp:
    """The app of the server under test, with its loop once it has served a request."""
    return CapturedApp()


@pytest.fixture
def busy_server(sqlite_server_factory: ServerFactory, captured: CapturedApp) -> RunningServer:
    """A server (loopback candidates only) whose loop the test can stall."""
    return sqlite_server_factory(ice_allowed_networks=LOOPBACK, app_factory=captured.build)


def signal(to: str, n: int) -> str:
    """A ``signal`` frame numbered ``n`` (its ``id`` and its candidate's ``sdpMid``)."""
    candidate = {"candidate": "", "sdpMid": str(n), "sdpMLineIndex": None}
    return json.dumps({"type": "signal", "to": to, "id": str(n), "data": {"candidate": candidate}})


async def outcomes(
    sender: ClientConnection, receiver: ClientConnection, count: int
) -> tuple[list[int], list[int], list[Frame]]:
    """Read both ends until ``count`` frames were delivered or refused.

    Returns the numbers delivered (in arrival order), the numbers refused, and the
    other frames the sender got.
    """
    delivered: list[int] = []
    refused: list[int] = []
    others: list[Frame] = []

    async def receive() -> None:
        while len(delivered) + len(refused) < count:
            got = await frame(receiver)
            if got["type"] == "signal":
                delivered.append(int(got["data"]["candidate"]["sdpMid"]))

    async def answers() -> None:
        while len(delivered) + len(refused) < count:
            got = await frame(sender)
            if got["type"] == "error" and got.get("ref") is not None:
                assert_error(got, 10000, ref=got["ref"])
                assert "busy" in got["errorMsg"] and "send it again" in got["errorMsg"], got
                refused.append(int(got["ref"]))
            else:
                others.append(got)

    async with asyncio.timeout(TIMEOUT):
        tasks = [asyncio.create_task(receive()), asyncio.create_task(answers())]
        try:
            await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
    return delivered, refused, others


async def test_a_saturated_server_refuses_signals_and_drops_none_silently(
    busy_server: RunningServer, captured: CapturedApp
) -> None:
    """While the loop is behind, signals are answered with server 10000 "busy" (ref = id)
    instead of queued; every frame is relayed or refused, the relayed ones in order, and
    once the loop has caught up signals are relayed again."""
    async with (
        httpx.AsyncClient(base_url=busy_server.url, timeout=30) as http,
        member(http, busy_server, "alice", 7100) as (alice, _),
        member(http, busy_server, "bob", 7100) as (bob, _),
    ):
        started = captured.stall()
        assert await asyncio.to_thread(started.wait, TIMEOUT)
        sent = 30
        for n in range(sent):
            await alice.send(signal("bob", n))
            await asyncio.sleep(0.01)
        delivered, refused, _ = await outcomes(alice, bob, sent)
        assert refused, "nothing was shed while the server's loop was stalled"
        assert sorted(delivered + refused) == list(range(sent))  # each once, none lost
        assert delivered == sorted(delivered)  # the relay keeps the sender's order

        # Caught up: signals flow again (sent one at a time until one is relayed).
        for n in range(sent, sent + 40):
            await alice.send(signal("bob", n))
            now_delivered, now_refused, _ = await outcomes(alice, bob, 1)
            if now_delivered:
                assert now_delivered == [n]
                break
            assert now_refused == [n]
        else:
            pytest.fail("signals were still shed long after the loop caught up")


async def test_one_slow_turn_of_the_loop_sheds_nothing(
    busy_server: RunningServer, captured: CapturedApp
) -> None:
    """A single hiccup (one long turn of the loop, as a garbage collection makes) is
    absorbed: every signal sent meanwhile is relayed, in order."""
    async with (
        httpx.AsyncClient(base_url=busy_server.url, timeout=30) as http,
        member(http, busy_server, "alice", 7102) as (alice, _),
        member(http, busy_server, "bob", 7102) as (bob, _),
    ):
        started = captured.stall(times=1)
        assert await asyncio.to_thread(started.wait, TIMEOUT)
        sent = 20
        for n in range(sent):
            await alice.send(signal("bob", n))
        delivered, refused, _ = await outcomes(alice, bob, sent)
        assert (delivered, refused) == (list(range(sent)), [])


async def test_a_saturated_server_still_answers_pings(
    busy_server: RunningServer, captured: CapturedApp
) -> None:
    """Only signals are shed: a ping sent while the loop is behind gets its pong."""
    async with (
        httpx.AsyncClient(base_url=busy_server.url, timeout=30) as http,
        member(http, busy_server, "alice", 7101) as (alice, _),
    ):
        started = captured.stall()
        assert await asyncio.to_thread(started.wait, TIMEOUT)
        t = ping_t()
        await alice.send(json.dumps({"type": "ping", "t": t}))
        got = await frame(alice)
        assert got == {"type": "pong", "t": t}


def test_only_signal_frames_are_refused_and_their_id_is_the_ref() -> None:
    """The refusal names a signal by its id; other frames, and unreadable ones, are left
    to the usual checks."""
    refusal = shed_refusal(signal("bob", 3))
    assert refusal is not None
    assert (refusal.module, refusal.error_code, refusal.ref) == ("server", 10000, "3")
    no_id = shed_refusal(json.dumps({"type": "signal", "to": "bob", "data": {}}))
    assert no_id is not None and no_id.ref is None
    for other in ('{"type": "ping", "t": 1}', "not json", "[1, 2]", '{"type": "state"}'):
        assert shed_refusal(other) is None


async def test_an_idle_loop_is_not_behind() -> None:
    """A loop with nothing to do is never behind, however often it is asked."""
    lag = LoopLag()
    for _ in range(50):
        assert not lag.behind()
        await asyncio.sleep(0)


async def test_the_python_client_sends_a_refused_signal_again_until_it_is_relayed(
    busy_server: RunningServer, captured: CapturedApp
) -> None:
    """A client's signals sent while the server sheds reach the other member all the same:
    the client's socket sends each refused one again after a short pause, so none is lost
    (a lost offer or candidate would stall a media link) and its user hears no error."""
    async with (
        httpx.AsyncClient(base_url=busy_server.url, timeout=30) as http,
        member(http, busy_server, "bob", 7103) as (bob, _),
    ):
        entered = await enter(http, busy_server, "alice", 7103)
        heard: list[ServerMessage] = []
        alice = SignalingSocket(
            entered["socketUrl"], entered["socketToken"], heard.append, lambda *_: None
        )
        await alice.open()
        try:
            assert (await frame(bob))["type"] == "member-joined"
            started = captured.stall()
            assert await asyncio.to_thread(started.wait, TIMEOUT)
            sent = 30
            for n in range(sent):
                data = CandidateData(IceCandidate(candidate="", sdp_mid=str(n)))
                await alice.send(SignalTo(to="bob", data=data))
                await asyncio.sleep(0.01)
            delivered: list[int] = []
            async with asyncio.timeout(TIMEOUT):
                while len(delivered) < sent:
                    got = await frame(bob)
                    if got["type"] == "signal":
                        delivered.append(int(got["data"]["candidate"]["sdpMid"]))
            assert sorted(delivered) == list(range(sent))  # each once, none lost
            metrics = (await http.get("/metrics")).text
            assert 'type="shed"' in metrics, "nothing was shed: the test proved nothing"
            assert [m for m in heard if m.type == "error"] == []
        finally:
            await alice.aclose()
