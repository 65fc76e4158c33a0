"""REST floods: per-user and per-address token buckets answer 429, server 10004, Retry-After.

Over a real server: a burst of enters from one user is cut off while an honest user
on the same address enters, heartbeats and reloads untouched; every limited route
is limited; the address bucket is spent before credentials are checked, and another
address is unaffected. The buckets themselves (retry times, bounded memory, IPv6
keys) are driven with a hand-moved clock.
"""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING, Any

import httpx
import pytest

from tavkit.errors import ServerCode
from tavkit.server.auth import Caller
from tavkit.server.ratelimit import (
    USER_LIMITS,
    BucketTable,
    Limit,
    RateLimited,
    RateLimits,
    address_key,
)
from tavkit.server.settings import AppConfig, Settings

from ._util import Clock, expect_error

if TYPE_CHECKING:
    from conftest import RunningServer, ServerFactory


def expect_limited(response: httpx.Response) -> int:
    """Assert ``response`` is the seed's "rate limited" 429; its ``Retry-After`` seconds."""
    message = expect_error(response, ServerCode.INVALID_PARAMETER, status=429)
    assert message.startswith("rate limited"), message
    retry_after = int(response.headers["Retry-After"])
    assert retry_after >= 1
    return retry_after


async def test_a_burst_of_300_enters_is_limited_and_an_honest_user_is_not(server: RunningServer):
    """300 enters from one user: most get 429 and open no session; meanwhile another user
    on the same address enters, heartbeats, reloads (exit + enter) and is never refused."""
    limits = httpx.Limits(max_connections=50)
    async with httpx.AsyncClient(base_url=server.url, timeout=60, limits=limits) as client:
        mallory = server.headers("mallory")

        async def flood() -> list[httpx.Response]:
            return list(
                await asyncio.gather(
                    *(
                        client.post(f"/v1/rooms/{room}/enter", headers=mallory)
                        for room in range(1, 301)
                    )
                )
            )

        async def honest() -> list[httpx.Response]:
            bob = server.headers("bob")
            seen = [await client.post("/v1/rooms/9000/enter", headers=bob)]
            for _ in range(3):
                seen.append(await client.post("/v1/rooms/9000/heartbeat", headers=bob))
                await asyncio.sleep(0.05)
            seen.append(await client.post("/v1/rooms/9000/exit", headers=bob))  # a reload
            seen.append(await client.post("/v1/rooms/9000/enter", headers=bob))
            seen.append(await client.post("/v1/rooms/9000/heartbeat", headers=bob))
            return seen

        flooded, honest_answers = await asyncio.gather(flood(), honest())

    assert [r.status_code for r in honest_answers] == [200] * len(honest_answers)
    ok = [r for r in flooded if r.status_code == 200]
    limited = [r for r in flooded if r.status_code == 429]
    assert len(ok) + len(limited) == 300, {r.status_code for r in flooded}
    assert len(ok) >= int(USER_LIMITS["enter"].burst)  # the burst itself is honoured
    assert len(limited) >= 200
    for response in limited:
        expect_limited(response)
    # A refused enter opened nothing: one session per accepted enter (bob's room aside,
    # which his reload may have closed and reopened).
    sql = "SELECT COUNT(*) FROM room_sessions WHERE room_id <> 9000"
    assert server.database.execute(sql)[0][0] == len(ok)


ROUTES: list[tuple[str, str, str]] = [
    ("enter", "POST", "/v1/rooms/{room}/enter"),
    ("heartbeat", "POST", "/v1/rooms/{room}/heartbeat"),
    ("exit", "POST", "/v1/rooms/{room}/exit"),
    ("history", "GET", "/v1/sessions/{uuid}/messages"),
    ("admin", "GET", "/v1/admin/rooms"),
    ("admin", "GET", "/v1/admin/sessions"),
    ("admin", "POST", "/v1/admin/rooms/{room}/close"),
    ("admin", "POST", "/v1/admin/rooms/{room}/users/nobody/remove"),
    ("admin", "GET", "/v1/admin/recording"),
    ("admin", "POST", "/v1/admin/rooms/{room}/recording/start"),
    ("admin", "POST", "/v1/admin/rooms/{room}/recording/stop"),
    ("admin", "DELETE", "/v1/sessions/{uuid}/recordings/{uuid}"),
    ("logs", "POST", "/v1/logs"),
]


@pytest.mark.parametrize(("kind", "method", "path"), ROUTES)
async def test_every_limited_route_answers_429_past_its_burst(
    sqlite_server_factory: ServerFactory, kind: str, method: str, path: str
):
    """Each limited route, called in a loop by one user (the admin for admin routes),
    answers the seed's 429 once that user's bucket is empty; another user still gets in."""
    server = sqlite_server_factory()
    headers = server.admin_headers() if kind == "admin" else server.headers("alice")
    async with httpx.AsyncClient(base_url=server.url, timeout=30) as client:
        entered = await client.post("/v1/rooms/7/enter", headers=server.headers("alice"))
        assert entered.status_code == 200, entered.text
        room_uuid = entered.json()["roomUuid"]
        url = path.format(room=7, uuid=room_uuid)
        body: dict[str, Any] | None = {"roomUuid": room_uuid, "logs": []}
        if kind != "logs":
            body = None
        burst = 20 if kind == "logs" else int(USER_LIMITS[kind].burst)
        first = await client.request(method, url, headers=headers, json=body)
        assert first.status_code != 429, first.text
        limited: list[httpx.Response] = []
        for _ in range(10):  # waves of requests drain the bucket faster than it refills
            wave = await asyncio.gather(
                *(client.request(method, url, headers=headers, json=body) for _ in range(burst))
            )
            limited = [response for response in wave if response.status_code == 429]
            if limited:
                break
        assert limited, f"{kind} was never limited"
        for response in limited:
            expect_limited(response)
        other = await client.post("/v1/rooms/8/enter", headers=server.headers("carol"))
        assert other.status_code == 200, other.text


async def test_the_address_bucket_comes_before_credentials_and_spares_other_addresses(
    sqlite_server_factory: ServerFactory,
):
    """Many users (and forged signatures) from one address exhaust its bucket - refused
    with 429 before any signature is checked - while a client on another address is not."""
    server = sqlite_server_factory(address_rate=0.1, address_burst=20)
    async with httpx.AsyncClient(base_url=server.url, timeout=30) as client:
        statuses = []
        for n in range(30):
            response = await client.post(
                f"/v1/rooms/{n + 1}/enter", headers=server.headers(f"u{n}")
            )
            statuses.append(response.status_code)
        assert statuses[:20] == [200] * 20 and set(statuses[20:]) == {429}
        forged = server.headers("u0", sig="not-a-signature")
        response = await client.post("/v1/rooms/1/heartbeat", headers=forged)
        assert "address" in expect_error(response, ServerCode.INVALID_PARAMETER, status=429)

    elsewhere = httpx.AsyncHTTPTransport(local_address="127.0.0.2")
    async with httpx.AsyncClient(base_url=server.url, timeout=30, transport=elsewhere) as client:
        response = await client.post("/v1/rooms/99/enter", headers=server.headers("zoe"))
        assert response.status_code == 200, response.text


async def test_rate_limits_off_lets_a_burst_through(sqlite_server_factory: ServerFactory):
    """``rate_limits=False`` (a gateway limits instead) turns the REST buckets off."""
    server = sqlite_server_factory(rate_limits=False)
    async with httpx.AsyncClient(base_url=server.url, timeout=30) as client:
        headers = server.headers("mallory")
        for room in range(1, 41):
            response = await client.post(f"/v1/rooms/{room}/enter", headers=headers)
            assert response.status_code == 200, response.text


# -- the buckets, on a hand-moved clock -----------------------------------------------------


def caller(user: str = "alice", app: int = 1400000001) -> Caller:
    """A verified caller of ``app``."""
    return Caller(app=AppConfig(app, "a" * 64), user_id=user, privileges=255, is_admin=False)


def test_retry_after_says_when_a_token_is_back():
    """A refusal's Retry-After is the whole seconds until a token; after it, one request passes."""
    clock = Clock()
    limits = RateLimits(users={"enter": Limit(0.25, 2)}, address=None, clock=clock)
    limits.user("enter", caller())
    limits.user("enter", caller())
    with pytest.raises(RateLimited) as refused:
        limits.user("enter", caller())
    assert refused.value.retry_after == 4 and refused.value.code == ServerCode.INVALID_PARAMETER
    assert refused.value.response().status_code == 429
    assert refused.value.response().headers["Retry-After"] == "4"
    limits.user("enter", caller("bob"))  # another user has a bucket of their own
    limits.user("enter", caller(app=1400000002))  # so has the same userId in another app
    clock.now += 3.9
    with pytest.raises(RateLimited):
        limits.user("enter", caller())
    clock.now += 0.2
    limits.user("enter", caller())


def test_the_heartbeat_bucket_follows_a_fast_heartbeat_interval():
    """A server told to heartbeat every 0.1 s gives heartbeats a bucket its clients fit in."""
    clock = Clock()
    settings = Settings(heartbeat_interval=0.1, heartbeat_timeout=1.0)
    limits = RateLimits.for_settings(settings)
    limits._users["heartbeat"] = BucketTable(  # the shape for_settings chose, on our clock
        limits._users["heartbeat"].limit, clock=clock
    )
    for _ in range(100):  # ten seconds of beats, one per interval
        clock.now += 0.1
        limits.user("heartbeat", caller())


def test_buckets_are_bounded_and_idle_full_ones_are_dropped():
    """Full buckets are forgotten after a minute; past max_keys the least recent go first."""
    clock = Clock()
    table: BucketTable[str] = BucketTable(Limit(1.0, 2), max_keys=100, clock=clock)
    for n in range(50):
        assert table.take(f"k{n}") == 0.0
    assert len(table) == 50
    clock.now += 61  # every bucket refilled: the next take prunes them all
    table.take("fresh")
    assert len(table) == 1
    for n in range(500):
        table.take(f"flood{n}")
        table.take(f"flood{n}")  # spent: not prunable, so the LRU bound must hold
    assert len(table) <= 100
    assert table.take("flood499") > 0  # the most recent keys are still remembered


@pytest.mark.parametrize(
    ("host", "key"),
    [
        ("203.0.113.7", "203.0.113.7"),
        ("2001:db8:1:2:3:4:5:6", "2001:db8:1:2::/64"),
        ("2001:db8:1:2:ffff::1", "2001:db8:1:2::/64"),
        ("::ffff:203.0.113.7", "203.0.113.7"),
        ("testclient", "testclient"),
    ],
)
def test_an_ipv6_client_is_keyed_by_its_64(host: str, key: str):
    """IPv6 addresses share their /64's bucket (one subscriber's block); IPv4 is itself."""
    assert address_key(host) == key


def test_the_limits_are_read_from_the_environment_and_checked():
    """TAVKIT_RATE_LIMITS, _ADDRESS_RATE/_BURST and _LOG_DAILY_CAP land in their fields;
    nonsense is refused; an address rate of 0 means no address bucket."""
    settings = Settings.from_env(
        {
            "TAVKIT_RATE_LIMITS": "false",
            "TAVKIT_ADDRESS_RATE": "0",
            "TAVKIT_ADDRESS_BURST": "50",
            "TAVKIT_LOG_DAILY_CAP": "0",
        }
    )
    assert (settings.rate_limits, settings.address_rate, settings.address_burst) == (
        False,
        0.0,
        50.0,
    )
    assert settings.log_daily_cap == 0
    defaults = Settings.from_env({})
    assert (defaults.rate_limits, defaults.address_rate, defaults.address_burst) == (
        True,
        100.0,
        1000.0,
    )
    assert defaults.log_daily_cap == 500_000
    assert RateLimits.for_settings(settings)._address is None
    for variable, value in (
        ("TAVKIT_ADDRESS_RATE", "-1"),
        ("TAVKIT_ADDRESS_RATE", "inf"),
        ("TAVKIT_ADDRESS_BURST", "0.5"),
        ("TAVKIT_LOG_DAILY_CAP", "-3"),
        ("TAVKIT_RATE_LIMITS", "sometimes"),
    ):
        with pytest.raises(ValueError):
            Settings.from_env({variable: value})
