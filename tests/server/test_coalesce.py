"""``state`` floods: one state write per 200 ms per socket, and the last state always lands.

The coalescer is driven with a hand-moved clock; over a real server a member sending
a thousand states takes a handful of writes, while another member's heartbeats and
messages go through and everyone ends up seeing the last state sent.
"""

from __future__ import annotations

import asyncio
import functools
import json
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import TYPE_CHECKING, Any

import httpx
import pytest
from websockets.asyncio.client import ClientConnection, connect

from tavkit.server import create_app
from tavkit.server.signaling import connection
from tavkit.server.signaling.coalesce import STATE_WINDOW, Coalescer
from tavkit.server.signaling.inbound import InboundScreen

from ._util import Clock

if TYPE_CHECKING:
    from conftest import RunningServer, ServerFactory

TIMEOUT = 15.0
Frame = dict[str, Any]


# --- the coalescer -------------------------------------------------------------------------


def test_the_first_state_goes_through_at_once_and_a_burst_waits_for_its_window():
    """A state after a quiet window is written now; those within the window are held,
    the later replacing the earlier, and the last one is due when the window ends."""
    clock = Clock()  # steps of 1/16 s: exact in binary, so the sums are too
    states: Coalescer[str] = Coalescer(clock, window=0.25)
    assert states.due_in() is None and states.due() is None
    assert states.offer("a") == "a"
    clock.now += 0.0625
    assert states.offer("b") is None
    clock.now += 0.0625
    assert states.offer("c") is None
    assert states.holding and states.superseded == 1
    assert states.due() is None
    assert states.due_in() == 0.125
    clock.now += 0.125
    assert states.due_in() == 0.0
    assert states.due() == "c"
    assert not states.holding and states.due_in() is None
    # "c" opened a new window: the next state waits for it too.
    assert states.offer("d") is None
    clock.now += 0.25
    assert states.due() == "d"


def test_a_state_after_an_overdue_one_replaces_it_and_goes_through():
    """If the socket was busy past the window, a new state goes out now in place of the
    held one (which is older and never written)."""
    clock = Clock()
    states: Coalescer[int] = Coalescer(clock, window=0.2)
    assert states.offer(1) == 1
    assert states.offer(2) is None
    clock.now += 1.0
    assert states.offer(3) == 3
    assert not states.holding and states.superseded == 1


def test_a_thousand_states_in_one_window_cost_two_writes():
    """However many states arrive within one window, two go through: the first and the last."""
    clock = Clock()
    states: Coalescer[int] = Coalescer(clock)
    written = [s for i in range(1000) if (s := states.offer(i)) is not None]
    clock.now += STATE_WINDOW
    written.append(states.due())  # type: ignore[arg-type]
    assert written == [0, 999]
    assert states.superseded == 998


def test_take_hands_over_the_held_state_whatever_the_window():
    """A closing socket takes the held state to write it; nothing is held afterwards."""
    clock = Clock()
    states: Coalescer[str] = Coalescer(clock)
    assert states.take() is None
    states.offer("first")
    states.offer("last")
    assert states.take() == "last"
    assert states.take() is None and states.due_in() is None


@pytest.mark.parametrize("window", [0.0, -1.0, float("inf"), float("nan")])
def test_the_window_must_be_a_positive_number(window: float):
    """A window that is not a positive finite number is a programming error."""
    with pytest.raises(ValueError):
        Coalescer(time.monotonic, window=window)


# --- over a real server ----------------------------------------------------------------------


class CountedWrites:
    """The server's room service with every ``set_state`` call counted (a seam, not a mock)."""

    def __init__(self) -> None:
        self.apps: list[Any] = []
        self.calls: list[tuple[bool, bool]] = []

    def build(self, settings: Any) -> Any:
        """The app factory: the real app, kept so its room service can be reached."""
        app = create_app(settings)
        self.apps.append(app)
        return app

    def install(self) -> None:
        """Wrap the running server's ``set_state`` (call after the server started)."""
        rooms = self.apps[-1].state.tavkit.rooms
        original = rooms.set_state

        async def counted(*args: Any, muted: bool, camera: bool, screen: bool = False) -> None:
            self.calls.append((muted, camera))
            await original(*args, muted=muted, camera=camera, screen=screen)

        rooms.set_state = counted


@pytest.fixture
def counted(sqlite_server_factory: ServerFactory) -> tuple[RunningServer, CountedWrites]:
    """A server whose state writes are counted."""
    writes = CountedWrites()
    server = sqlite_server_factory(app_factory=writes.build)
    writes.install()
    return server, writes


async def frame(ws: ClientConnection) -> Frame:
    """The next frame, decoded."""
    decoded: Frame = json.loads(await asyncio.wait_for(ws.recv(), TIMEOUT))
    return decoded


async def until(ws: ClientConnection, wanted: Frame) -> list[Frame]:
    """Read until a frame containing every item of ``wanted``; return the frames read."""
    seen: list[Frame] = []
    async with asyncio.timeout(TIMEOUT):
        while True:
            got = await frame(ws)
            seen.append(got)
            if wanted.items() <= got.items():
                return seen


@asynccontextmanager
async def member(
    http: httpx.AsyncClient, server: RunningServer, user: str, room: int
) -> AsyncIterator[ClientConnection]:
    """Enter ``room`` as ``user`` and open the socket, past its welcome."""
    entered = await http.post(f"/v1/rooms/{room}/enter", headers=server.headers(user))
    assert entered.status_code == 200, entered.text
    token = entered.json()["socketToken"]
    async with connect(
        server.ws_url,
        proxy=None,
        open_timeout=TIMEOUT,
        close_timeout=2,
        subprotocols=["tavkit.v1", f"tavkit.token.{token}"],  # type: ignore[list-item]
    ) as ws:
        assert (await frame(ws))["type"] == "welcome"
        yield ws


def state(muted: bool, camera: bool) -> str:
    """A ``state`` frame."""
    return json.dumps({"type": "state", "muted": muted, "camera": camera})


async def test_a_flood_of_states_is_coalesced_and_hurts_nobody(
    counted: tuple[RunningServer, CountedWrites], monkeypatch: pytest.MonkeyPatch
):
    """Alice sends 1,000 states as fast as she can (the frame-rate screen opened wide, so
    every one reaches the coalescer): at most one write per 200 ms lands, bob sees one
    member-state per write and then alice's last state, and meanwhile bob's REST
    heartbeats and his in-call message go through."""
    wide = functools.partial(InboundScreen, rate=1e6, burst=1e6)
    monkeypatch.setattr(connection, "InboundScreen", wide)
    server, writes = counted
    async with (
        httpx.AsyncClient(base_url=server.url, timeout=TIMEOUT) as http,
        member(http, server, "alice", 40) as alice,
        member(http, server, "bob", 40) as bob,
    ):
        await until(alice, {"type": "member-joined"})

        async def flood() -> None:
            for i in range(999):  # muted throughout, the camera flickering
                await alice.send(state(True, i % 2 == 0))
            await alice.send(state(False, False))  # the last one, and the only unmuted one

        async def honest() -> list[int]:
            statuses = []
            for _ in range(3):
                beat = await http.post("/v1/rooms/40/heartbeat", headers=server.headers("bob"))
                statuses.append(beat.status_code)
            message = {"type": "message", "clientMsgId": "m1", "kind": "text", "text": "hi"}
            await bob.send(json.dumps(message))
            return statuses

        started = time.monotonic()
        _, statuses = await asyncio.gather(flood(), honest())
        seen = await until(bob, {"type": "member-state", "muted": False, "camera": False})
        elapsed = time.monotonic() - started
        if not any(f["type"] == "message" for f in seen):  # it may come after the states
            seen += await until(bob, {"type": "message", "text": "hi"})
        users = await http.get("/v1/rooms/40/users", headers=server.headers("bob"))

    assert statuses == [200, 200, 200]
    assert any(f["type"] == "message" and f.get("text") == "hi" for f in seen)
    states = [(f["muted"], f["camera"]) for f in seen if f["type"] == "member-state"]
    assert writes.calls[-1] == (False, False) == states[-1]
    assert states == writes.calls  # one broadcast per write, in order
    assert 2 <= len(writes.calls) <= 2 + elapsed / STATE_WINDOW
    by_user = {m["userId"]: m for m in users.json()["members"]}
    assert (by_user["alice"]["muted"], by_user["alice"]["camera"]) == (False, False)


async def test_a_state_held_when_the_socket_closes_still_lands(
    counted: tuple[RunningServer, CountedWrites],
):
    """Alice sends two states and hangs up at once: the second, held for its window,
    is written as her socket closes, and bob sees it."""
    server, writes = counted
    async with (
        httpx.AsyncClient(base_url=server.url, timeout=TIMEOUT) as http,
        member(http, server, "bob", 41) as bob,
    ):
        async with member(http, server, "alice", 41) as alice:
            await until(bob, {"type": "member-joined"})
            await alice.send(state(True, True))
            await alice.send(state(True, False))
        seen = await until(bob, {"type": "member-state", "muted": True, "camera": False})
    assert [(f["muted"], f["camera"]) for f in seen if f["type"] == "member-state"] == [
        (True, True),
        (True, False),
    ]
    assert writes.calls == [(True, True), (True, False)]
