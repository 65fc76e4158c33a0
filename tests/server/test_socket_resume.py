"""A socket resumes on any replica: the database, not the process, knows who had a socket.

A connection's first socket marks its member row (``members.socket_opened_at``) once;
every later socket of it reads the mark, so a server that never saw the connection
(restarted, or another replica) still answers ``welcome.resumed`` and lets the token
past its first-connection window. A newer socket supersedes an older one through the
session's ``socket-open`` events, so across servers too. And a socket that cannot
subscribe because Redis is away is refused cleanly (error, 1011).
"""

from __future__ import annotations

import asyncio
import json
import secrets
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager, contextmanager
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

import httpx
import pytest
from sqlalchemy import event, select
from sqlalchemy.engine import Engine
from websockets.asyncio.client import ClientConnection, connect

from tavkit.server.signaling.tokens import load_or_create_secret, verify
from tavkit.server.store.db import Store
from tavkit.server.store.models import MemberRow
from tavkit.testing.relay import TcpRelay

from .test_signaling import LOOPBACK, TIMEOUT, assert_error, closed, enter, expired, frame, sync

if TYPE_CHECKING:
    from conftest import RunningServer, ServerFactory

REDIS_URL = "redis://127.0.0.1:6379/0"


@asynccontextmanager
async def socket(server: RunningServer, token: str) -> AsyncIterator[ClientConnection]:
    """The signaling socket, the token offered as a subprotocol as clients do."""
    protocols: Any = ["tavkit.v1", f"tavkit.token.{token}"]
    async with connect(
        server.ws_url, subprotocols=protocols, proxy=None, open_timeout=TIMEOUT, close_timeout=2
    ) as ws:
        yield ws


def connection_of(server: RunningServer, token: str) -> str:
    """The connection id ``token`` names (clients never read it; the test may)."""
    return verify(load_or_create_secret(server.settings.data_dir), token).connection_id


async def opened_at(server: RunningServer, connection_id: str) -> float | None:
    """The member row's ``socket_opened_at``, read straight from the database."""
    store = Store.open(server.database.url, schema=server.database.schema)
    try:
        async with store.reads() as s:
            value: float | None = await s.scalar(
                select(MemberRow.socket_opened_at).where(MemberRow.connection_id == connection_id)
            )
            return value
    finally:
        await store.close()


@contextmanager
def marks_written() -> Iterator[list[str]]:
    """Every UPDATE of ``socket_opened_at`` any engine in this process runs meanwhile."""
    seen: list[str] = []

    def watch(conn: Any, cursor: Any, statement: str, *args: Any) -> None:
        if statement.lstrip().upper().startswith("UPDATE") and "socket_opened_at" in statement:
            seen.append(statement)

    event.listen(Engine, "before_cursor_execute", watch)
    try:
        yield seen
    finally:
        event.remove(Engine, "before_cursor_execute", watch)


async def test_the_first_socket_is_recorded_once_and_resumes_never_write(server_factory):
    """The first socket marks the row with one UPDATE; resumes read the mark, never write it."""
    server = server_factory(ice_allowed_networks=LOOPBACK)
    async with httpx.AsyncClient(base_url=server.url, timeout=30) as http:
        entered = await enter(http, server, "alice", 60)
        connection_id = connection_of(server, entered["socketToken"])
        assert await opened_at(server, connection_id) is None
        with marks_written() as updates:
            async with socket(server, entered["socketToken"]) as first:
                assert (await frame(first))["resumed"] is False
            first_mark = await opened_at(server, connection_id)
            assert first_mark is not None
            for _ in range(3):
                async with socket(server, entered["socketToken"]) as again:
                    assert (await frame(again))["resumed"] is True
        assert len(updates) == 1, updates
        assert await opened_at(server, connection_id) == first_mark


async def test_a_restarted_server_resumes_past_the_window_what_it_never_saw(server_factory):
    """After a restart (an empty registry), the row alone lets an expired token resume,
    ``resumed`` true; a connection that never had a socket is still refused (4401)."""
    server = server_factory(ice_allowed_networks=LOOPBACK)
    async with httpx.AsyncClient(base_url=server.url, timeout=30) as http:
        early = await enter(http, server, "early", 61)
        late = await enter(http, server, "late", 61)
        async with socket(server, early["socketToken"]) as ws:
            assert (await frame(ws))["resumed"] is False
    server.restart()
    async with socket(server, expired(server, early["socketToken"])) as ws:
        welcome = await frame(ws)
        assert welcome["type"] == "welcome" and welcome["resumed"] is True
        assert [m["userId"] for m in welcome["members"]] == ["late"]
    async with socket(server, expired(server, late["socketToken"])) as ws:
        code, frames = await closed(ws)
    assert code == 4401
    assert "expired" in assert_error(frames[0], 10005)


async def test_a_token_of_a_connection_that_left_is_refused_even_if_it_had_a_socket(
    server_factory,
):
    """The mark does not outlive the membership: once replaced, the old token is refused."""
    server = server_factory(ice_allowed_networks=LOOPBACK)
    async with httpx.AsyncClient(base_url=server.url, timeout=30) as http:
        old = await enter(http, server, "alice", 62)
        async with socket(server, old["socketToken"]) as ws:
            assert (await frame(ws))["type"] == "welcome"
        await enter(http, server, "alice", 62)  # entering again replaces the connection
    for token in (old["socketToken"], expired(server, old["socketToken"])):
        async with socket(server, token) as ws:
            code, frames = await closed(ws)
        assert code == 4401
        assert "no longer in the room" in assert_error(frames[0], 10005)


# --- two servers on one PostgreSQL and one Redis, sharing the token secret -------------------


def pair(server_factory: ServerFactory, **extra: Any) -> tuple[RunningServer, RunningServer]:
    """Two servers as two replicas: one database, one Redis prefix, one data directory."""
    prefix = f"tavkit-test-{secrets.token_hex(4)}:"
    options = {"redis_url": REDIS_URL, "redis_prefix": prefix, "ice_allowed_networks": LOOPBACK}
    one = server_factory(**options, **extra)
    two = server_factory(
        apps=one.settings.apps,
        admin_key=one.settings.admin_key,
        data_dir=one.settings.data_dir,
        **options,
        **extra,
    )
    return one, two


@pytest.mark.parametrize("database", ["postgres"], indirect=True)
async def test_a_socket_on_another_server_supersedes_the_half_open_one(server_factory):
    """Same connection, newer socket on the second server: it resumes past the window and
    the first server closes the older socket with 4001; the newer one keeps working."""
    one, two = pair(server_factory)
    async with httpx.AsyncClient(base_url=one.url, timeout=30) as http:
        entered = await enter(http, one, "alice", 63)
    async with socket(one, entered["socketToken"]) as older:
        assert (await frame(older))["resumed"] is False
        async with socket(two, expired(two, entered["socketToken"])) as newer:
            welcome = await frame(newer)
            assert welcome["type"] == "welcome" and welcome["resumed"] is True
            code, _ = await closed(older)
            assert code == 4001
            assert older.close_reason == "superseded by a newer socket"
            assert await sync(newer) == []


async def test_a_socket_is_refused_with_1011_while_redis_is_away(
    server_factory: ServerFactory,
) -> None:
    """Redis gone after enter: the socket gets server 10000 naming the bus, then 1011,
    instead of an exception escaping; once Redis is back the same token opens."""
    target = urlsplit(REDIS_URL)
    async with TcpRelay(target.hostname or "127.0.0.1", target.port or 6379) as relay:
        through = f"redis://127.0.0.1:{relay.port}/0"
        prefix = f"tavkit-test-{secrets.token_hex(4)}:"
        # Started off the loop: its Redis connections go through the relay on this loop.
        server = await asyncio.to_thread(
            server_factory, redis_url=through, redis_prefix=prefix, ice_allowed_networks=LOOPBACK
        )
        async with httpx.AsyncClient(base_url=server.url, timeout=30) as http:
            entered = await enter(http, server, "alice", 64)
            relay.refuse(1_000_000)
            relay.cut()
            async with socket(server, entered["socketToken"]) as ws:
                code, frames = await closed(ws)
            assert code == 1011
            assert "Redis" in assert_error(frames[0], 10000)
            assert not [f for f in frames if f["type"] == "welcome"]

            relay.refuse(0)
            for _ in range(100):  # the bus reconnects by itself, with a backoff
                async with socket(server, entered["socketToken"]) as ws:
                    first = json.loads(await asyncio.wait_for(ws.recv(), TIMEOUT))
                if first["type"] == "welcome":
                    break
                await asyncio.sleep(0.1)
            assert first["type"] == "welcome", first
            await asyncio.to_thread(server.stop)
