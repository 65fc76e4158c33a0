"""The cap on new sessions: a user may open ``sessions_per_minute`` rooms a minute.

Over a real server: a user entering one room id after another is refused with the
seed's 429 once past the cap, and no session row is created for a refused enter;
entering a room that already has an open session never counts; another user is
unaffected; 0 turns the cap off. The bucket itself is driven with a hand-moved clock.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import httpx
import pytest

from tavkit.errors import ServerCode
from tavkit.server.auth import Caller
from tavkit.server.ratelimit import Limit, RateLimited, RateLimits
from tavkit.server.settings import AppConfig, Settings

from ._util import Clock, expect_error

if TYPE_CHECKING:
    from conftest import RunningServer, ServerFactory


def expect_limited(response: httpx.Response) -> str:
    """Assert ``response`` is the seed's "rate limited" 429 with a Retry-After; its message."""
    message = expect_error(response, ServerCode.INVALID_PARAMETER, status=429)
    assert message.startswith("rate limited"), message
    assert int(response.headers["Retry-After"]) >= 1
    return message


def caller(user: str) -> Caller:
    """A verified caller of the test app."""
    return Caller(app=AppConfig(1400000001, "a" * 64), user_id=user, privileges=255, is_admin=False)


def sessions_in(server: RunningServer, rooms: range) -> int:
    """Session rows, open or closed, of the rooms in ``rooms``."""
    sql = (
        "SELECT COUNT(*) FROM room_sessions"
        f" WHERE room_id >= {rooms.start} AND room_id < {rooms.stop}"
    )
    return int(server.database.execute(sql)[0][0])


async def test_a_user_opening_rooms_in_a_loop_is_stopped(server_factory: ServerFactory):
    """With a cap of 3, mallory's enters into rooms 1-6 open three sessions; the other
    three get 429 "too many new sessions" and leave no session row behind. She may still
    join a call bob opened, and bob opens rooms of his own untouched."""
    server = server_factory(sessions_per_minute=3)
    async with httpx.AsyncClient(base_url=server.url, timeout=30) as http:
        mallory, bob = server.headers("mallory"), server.headers("bob")
        answers = [
            await http.post(f"/v1/rooms/{room}/enter", headers=mallory) for room in range(1, 7)
        ]
        assert [r.status_code for r in answers] == [200, 200, 200, 429, 429, 429]
        for refused in answers[3:]:
            assert "too many new sessions" in expect_limited(refused)
        assert sessions_in(server, range(1, 7)) == 3

        opened = await http.post("/v1/rooms/100/enter", headers=bob)
        assert opened.status_code == 200, opened.text
        joined = await http.post("/v1/rooms/100/enter", headers=mallory)
        assert joined.status_code == 200, joined.text  # an open session: not a new one
        assert joined.json()["roomUuid"] == opened.json()["roomUuid"]
        for room in range(101, 103):  # his cap is his own: three of them
            mine = await http.post(f"/v1/rooms/{room}/enter", headers=bob)
            assert mine.status_code == 200, mine.text
    assert sessions_in(server, range(1, 7)) == 3
    assert sessions_in(server, range(100, 103)) == 3


async def test_a_refused_enter_leaves_the_user_where_they_were(sqlite_server: RunningServer):
    """Past the cap (10 by default), the refused enter into a new room does not take the
    user out of the room they are in: their heartbeat there still counts."""
    async with httpx.AsyncClient(base_url=sqlite_server.url, timeout=30) as http:
        carol = sqlite_server.headers("carol")
        for room in range(200, 210):
            entered = await http.post(f"/v1/rooms/{room}/enter", headers=carol)
            assert entered.status_code == 200, entered.text
        expect_limited(await http.post("/v1/rooms/210/enter", headers=carol))
        beat = await http.post("/v1/rooms/209/heartbeat", headers=carol)
        assert beat.status_code == 200, beat.text
        assert beat.json()["roomUuid"] == entered.json()["roomUuid"]
    assert sessions_in(sqlite_server, range(210, 211)) == 0


async def test_a_cap_of_zero_is_no_cap(sqlite_server_factory: ServerFactory):
    """sessions_per_minute=0: a user opens as many rooms as the enter bucket lets them."""
    server = sqlite_server_factory(sessions_per_minute=0)
    async with httpx.AsyncClient(base_url=server.url, timeout=30) as http:
        dave = server.headers("dave")
        for room in range(300, 306):
            entered = await http.post(f"/v1/rooms/{room}/enter", headers=dave)
            assert entered.status_code == 200, entered.text
    assert sessions_in(server, range(300, 306)) == 6


def test_the_session_bucket_refills_at_the_cap_a_minute():
    """A cap of 2: two sessions at once, then one every 30 s; another user has their own;
    a cap of 0 is no bucket at all."""
    assert RateLimits.for_settings(Settings(sessions_per_minute=2))._users[
        "session"
    ].limit == Limit(2 / 60, 2)
    assert "session" not in RateLimits.for_settings(Settings(sessions_per_minute=0))._users
    clock = Clock()
    limits = RateLimits(users={"session": Limit(2 / 60, 2)}, address=None, clock=clock)
    limits.user("session", caller("erin"))
    limits.user("session", caller("erin"))
    with pytest.raises(RateLimited) as caught:
        limits.user("session", caller("erin"))
    assert caught.value.retry_after == 30
    assert "too many new sessions from erin" in caught.value.message
    limits.user("session", caller("frank"))
    clock.now += 30
    limits.user("session", caller("erin"))


def test_the_cap_is_read_from_the_environment_and_checked():
    """TAVKIT_SESSIONS_PER_MINUTE lands in its field (default 10); a negative cap is refused."""
    assert Settings.from_env({}).sessions_per_minute == 10
    assert Settings.from_env({"TAVKIT_SESSIONS_PER_MINUTE": "0"}).sessions_per_minute == 0
    assert Settings.from_env({"TAVKIT_SESSIONS_PER_MINUTE": "25"}).sessions_per_minute == 25
    for raw in ("-1", "many"):
        with pytest.raises(ValueError, match=r"(?i)sessions_per_minute"):
            Settings.from_env({"TAVKIT_SESSIONS_PER_MINUTE": raw})
