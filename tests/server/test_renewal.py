"""Credentials that end mid-call, over a real server: ``expiring``, ``renew``, ``expired``.

Signatures here live a few seconds (``TLS.expire`` is whole seconds) and the renewal
grace is one second, so a credential ends while the test watches. Nothing asserts a
duration: each test waits for the frames the server sends, and orders members by
when their signatures end.
"""

from __future__ import annotations

import asyncio
import json
import logging
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import TYPE_CHECKING, Any

import httpx
import pytest
from conftest import APP_ID, random_key
from websockets.asyncio.client import ClientConnection, connect
from websockets.typing import Subprotocol

from tavkit.auth import Privilege, decode_sig, gen_private_map_key, gen_user_sig
from tavkit.server import AppConfig, Settings
from tavkit.server.ice import MIN_TURN_TTL, ice_servers_for
from tavkit.server.settings import parse_networks
from tavkit.server.signaling.renewal import warn_at
from tavkit.server.signaling.tokens import mint, verify

from ._secrets import assert_no_secrets
from .test_signaling import closed, frame, sync, until

if TYPE_CHECKING:
    from conftest import RunningServer, ServerFactory

Frame = dict[str, Any]
GRACE = 1.0
ROOM = 4242
OFFER = (
    "v=0\r\no=- 1 2 IN IP4 127.0.0.1\r\ns=-\r\nt=0 0\r\n"
    "m=audio 9 UDP/TLS/RTP/SAVPF 111\r\na=mid:0\r\na=sendrecv\r\n"
)
TURN_SECRET = "turn-secret-for-tests-0123456789"


@pytest.fixture
def server(sqlite_server_factory: ServerFactory) -> RunningServer:
    """A server with a one-second renewal grace, relaying loopback candidates only."""
    return sqlite_server_factory(
        renew_grace=GRACE, ice_allowed_networks=parse_networks("127.0.0.0/8")
    )


@pytest.fixture
async def http(server: RunningServer) -> AsyncIterator[httpx.AsyncClient]:
    """An HTTP client for that server."""
    async with httpx.AsyncClient(base_url=server.url, timeout=30) as client:
        yield client


def short_sig(server: RunningServer, user: str, seconds: int) -> str:
    """A userSig of ``user`` that ends ``seconds`` after it is made."""
    return server.sig(user, expire=seconds)


async def enter(
    http: httpx.AsyncClient, server: RunningServer, user: str, *, sig: str, pmk: str | None = None
) -> Frame:
    """Enter :data:`ROOM` with the given credentials, asserting success."""
    headers = server.headers(user, sig=sig, pmk=pmk)
    response = await http.post(f"/v1/rooms/{ROOM}/enter", headers=headers)
    assert response.status_code == 200, response.text
    body: Frame = response.json()
    return body


@asynccontextmanager
async def member(
    http: httpx.AsyncClient, server: RunningServer, user: str, **creds: Any
) -> AsyncIterator[tuple[ClientConnection, Frame]]:
    """Enter and open the socket (token in the handshake); yield it with the enter response."""
    entered = await enter(http, server, user, **creds)
    async with opened(server, entered["socketToken"]) as ws:
        welcome = await frame(ws)
        assert welcome["type"] == "welcome", welcome
        yield ws, entered


@asynccontextmanager
async def opened(server: RunningServer, token: str) -> AsyncIterator[ClientConnection]:
    """A socket carrying ``token`` as the contract's subprotocol."""
    protocols = [Subprotocol("tavkit.v1"), Subprotocol(f"tavkit.token.{token}")]
    async with connect(
        server.ws_url, subprotocols=protocols, proxy=None, open_timeout=10, close_timeout=2
    ) as ws:
        yield ws


async def renew(ws: ClientConnection, sig: str, pmk: str | None = None, ref: str = "r1") -> Frame:
    """Send ``renew`` and return the answer naming it (``renewed`` or ``error``)."""
    wire: Frame = {"type": "renew", "userSig": sig, "id": ref}
    if pmk is not None:
        wire["privateMapKey"] = pmk
    await ws.send(json.dumps(wire))
    async with asyncio.timeout(10):
        while True:
            got = await frame(ws)
            if got["type"] in ("renewed", "error") and got.get("ref") == ref:
                return got


async def members(http: httpx.AsyncClient, server: RunningServer, user: str) -> set[str]:
    """The room's members as ``user`` sees them over REST."""
    response = await http.get(f"/v1/rooms/{ROOM}/users", headers=server.headers(user))
    assert response.status_code == 200, response.text
    return {m["userId"] for m in response.json()["members"]}


def offer(to: str) -> str:
    """A ``signal`` frame offering to send and receive audio."""
    data = {"description": {"type": "offer", "sdp": OFFER}}
    return json.dumps({"type": "signal", "to": to, "data": data, "id": "o1"})


# --- expiry ----------------------------------------------------------------------------------


async def test_unrenewed_credentials_warn_then_remove_with_expired(server, http):
    """A member whose userSig ends is warned (end, deadline), then removed: removed/4002,
    member-left "expired" for the others, and "expired" in the session's history."""
    sig = short_sig(server, "alice", 2)
    end = decode_sig(sig).expires_at
    async with member(http, server, "bob", sig=server.sig("bob")) as (bob, _):
        async with member(http, server, "alice", sig=sig) as (alice, entered):
            warning, _ = await until(alice, "expiring")
            assert warning == {"type": "expiring", "expiresAt": end, "deadline": end + GRACE}
            code, frames = await closed(alice, within=15)
            assert code == 4002
            assert frames[-1] == {"type": "removed", "reason": "expired"}
        left, _ = await until(bob, "member-left")
        assert left == {"type": "member-left", "userId": "alice", "reason": "expired"}
        response = await http.get(
            f"/v1/sessions/{entered['roomUuid']}", headers=server.headers("bob")
        )
        history = {m["userId"]: m["leaveReason"] for m in response.json()["members"]}
        assert history["alice"] == "expired"
        assert await members(http, server, "bob") == {"bob"}


async def test_a_renewed_member_stays_past_its_old_deadline(server, http):
    """Renewing on ``expiring`` keeps the member; one whose signature ended later and did
    not renew is removed meanwhile, so the renewed one's old deadline has passed."""
    alice_sig = short_sig(server, "alice", 2)
    async with (
        member(http, server, "bob", sig=server.sig("bob")) as (bob, _),
        member(http, server, "alice", sig=alice_sig) as (alice, _),
    ):
        await until(alice, "expiring")
        fresh = server.sig("alice", expire=3600)
        renewed = await renew(alice, fresh)
        assert renewed["type"] == "renewed", renewed
        assert renewed["expiresAt"] == decode_sig(fresh).expires_at
        assert renewed["privileges"] == 255
        assert renewed["socketToken"] and renewed["iceServers"] == []
        # carol's signature ends after alice's old one: once she is gone, so is that deadline.
        carol_sig = short_sig(server, "carol", 3)
        assert decode_sig(carol_sig).expires_at > decode_sig(alice_sig).expires_at
        async with member(http, server, "carol", sig=carol_sig) as (carol, _):
            code, _ = await closed(carol, within=15)
            assert code == 4002
        left, _ = await until(bob, "member-left")
        assert (left["userId"], left["reason"]) == ("carol", "expired")
        assert "expiring" not in {f["type"] for f in await sync(alice)}
        assert await members(http, server, "bob") == {"alice", "bob"}


async def test_a_refused_renewal_leaves_the_old_credentials_to_expire(server, http, caplog):
    """A renew with someone else's userSig is avkit 70346 (with ref); the member is then
    removed with "expired" as if it had not renewed. No signature reaches a log line."""
    caplog.set_level(logging.DEBUG)
    sig, wrong = short_sig(server, "alice", 2), server.sig("mallory")
    async with member(http, server, "alice", sig=sig) as (alice, _):
        await until(alice, "expiring")
        refused = await renew(alice, wrong)
        assert (refused["type"], refused["module"], refused["errorCode"]) == (
            "error",
            "avkit",
            70346,
        )
        code, frames = await closed(alice, within=15)
        assert code == 4002 and frames[-1] == {"type": "removed", "reason": "expired"}
    lines = [record.getMessage() for record in caplog.records]
    assert_no_secrets(lines, {"userSig": sig, "wrong userSig": wrong}, where="the server")


async def test_resuming_with_the_renewed_token_carries_the_new_end(server, http):
    """The ``renewed`` socket token resumes the connection with the new end: no warning."""
    async with member(http, server, "alice", sig=short_sig(server, "alice", 2)) as (alice, _):
        await until(alice, "expiring")
        renewed = await renew(alice, server.sig("alice", expire=3600))
    async with opened(server, renewed["socketToken"]) as again:
        welcome = await frame(again)
        assert (welcome["type"], welcome["resumed"]) == ("welcome", True)
        assert "expiring" not in {f["type"] for f in await sync(again)}


# --- privileges --------------------------------------------------------------------------------


@pytest.fixture
def pmk_server(sqlite_server_factory: ServerFactory) -> RunningServer:
    """A server whose app requires a privateMapKey on enter."""
    app = AppConfig(APP_ID, random_key(), require_private_map_key=True)
    return sqlite_server_factory(apps=(app,), renew_grace=GRACE)


async def test_a_renewed_key_with_fewer_bits_is_enforced_at_once(pmk_server):
    """After renewing with a viewer's key (42), an offer to send audio is refused 10004."""
    server = pmk_server
    async with httpx.AsyncClient(base_url=server.url, timeout=30) as http:
        bob_creds = {"sig": server.sig("bob"), "pmk": server.pmk("bob", ROOM)}
        alice_creds = {"sig": server.sig("alice"), "pmk": server.pmk("alice", ROOM)}
        async with (
            member(http, server, "bob", **bob_creds) as (bob, _),
            member(http, server, "alice", **alice_creds) as (alice, _),
        ):
            await alice.send(offer("bob"))
            relayed, _ = await until(bob, "signal")
            assert relayed["from"] == "alice"
            viewer = server.pmk("alice", ROOM, privilege=int(Privilege.VIEWER))
            renewed = await renew(alice, server.sig("alice"), viewer)
            assert renewed["privileges"] == int(Privilege.VIEWER)
            await alice.send(offer("bob"))
            refused, _ = await until(alice, "error")
            assert (refused["errorCode"], refused["ref"]) == (10004, "o1")
            assert "SEND_AUDIO" in refused["errorMsg"]


async def test_only_a_member_with_the_sub_stream_bit_may_say_it_shares_a_screen(pmk_server):
    """state.screen reaches the others as member-state screen:true; without bit 64 it is 10004."""
    server = pmk_server
    no_sub = int(Privilege.ALL) & ~int(Privilege.SEND_SUB)
    async with httpx.AsyncClient(base_url=server.url, timeout=30) as http:
        bob_creds = {"sig": server.sig("bob"), "pmk": server.pmk("bob", ROOM, privilege=no_sub)}
        alice_creds = {"sig": server.sig("alice"), "pmk": server.pmk("alice", ROOM)}
        async with (
            member(http, server, "bob", **bob_creds) as (bob, _),
            member(http, server, "alice", **alice_creds) as (alice, _),
        ):
            state = {"type": "state", "muted": False, "camera": True, "screen": True, "id": "s1"}
            await alice.send(json.dumps(state))
            shared, _ = await until(bob, "member-state")
            assert shared == {
                "type": "member-state",
                "userId": "alice",
                "muted": False,
                "camera": True,
                "screen": True,
            }
            await bob.send(json.dumps(state))
            refused, _ = await until(bob, "error")
            assert (refused["errorCode"], refused["ref"]) == (10004, "s1")
            assert "SEND_SUB" in refused["errorMsg"]


def screen_signal(to: str, kind: str, direction: str, ref: str, *, marked: bool = True) -> str:
    """A ``signal`` frame whose description has a screen m-line (mid 1, a=content:slides
    unless ``marked`` is false)."""
    mark = "a=content:slides\r\n" if marked else ""
    sdp = (
        "v=0\r\no=- 1 2 IN IP4 127.0.0.1\r\ns=-\r\nt=0 0\r\n"
        "m=video 9 UDP/TLS/RTP/SAVPF 96\r\na=mid:0\r\na=sendrecv\r\n"
        f"m=video 9 UDP/TLS/RTP/SAVPF 96\r\na=mid:1\r\n{mark}a={direction}\r\n"
    )
    data = {"description": {"type": kind, "sdp": sdp}}
    return json.dumps({"type": "signal", "to": to, "data": data, "id": ref})


async def test_a_screen_m_line_is_relayed_only_with_the_sub_stream_bits(pmk_server):
    """A slides m-line needs bit 64 to send and 128 to receive, the camera's 16/32 do
    not do: refused 10004 naming the bit; inactive, or with the bits, it is relayed."""
    server = pmk_server
    no_send_sub = int(Privilege.ALL) & ~int(Privilege.SEND_SUB)
    no_recv_sub = int(Privilege.ALL) & ~int(Privilege.RECV_SUB)
    async with httpx.AsyncClient(base_url=server.url, timeout=30) as http:
        bob_creds = {"sig": server.sig("bob"), "pmk": server.pmk("bob", ROOM, no_recv_sub)}
        alice_creds = {"sig": server.sig("alice"), "pmk": server.pmk("alice", ROOM, no_send_sub)}
        async with (
            member(http, server, "bob", **bob_creds) as (bob, _),
            member(http, server, "alice", **alice_creds) as (alice, _),
        ):
            await alice.send(screen_signal("bob", "offer", "sendonly", "a1"))
            refused, _ = await until(alice, "error")
            assert (refused["errorCode"], refused["ref"]) == (10004, "a1")
            assert "SEND_SUB (64)" in refused["errorMsg"]
            await bob.send(screen_signal("alice", "answer", "recvonly", "b1"))
            refused, _ = await until(bob, "error")
            assert (refused["errorCode"], refused["ref"]) == (10004, "b1")
            assert "RECV_SUB (128)" in refused["errorMsg"]
            await bob.send(screen_signal("alice", "answer", "inactive", "b2"))
            relayed, _ = await until(alice, "signal")
            assert relayed["from"] == "bob"
            await bob.send(screen_signal("alice", "offer", "sendonly", "b3"))  # bob may send one
            relayed, _ = await until(alice, "signal")
            assert relayed["data"]["description"]["type"] == "offer"


async def test_an_answer_that_drops_the_screen_mark_is_still_checked_as_a_screen(pmk_server):
    """Bob, without bit 128, answers Alice's screen offer with the mark left out: the
    server reads mid 1 as the screen Alice offered and refuses to let him receive it."""
    server = pmk_server
    no_recv_sub = int(Privilege.ALL) & ~int(Privilege.RECV_SUB)
    async with httpx.AsyncClient(base_url=server.url, timeout=30) as http:
        bob_creds = {"sig": server.sig("bob"), "pmk": server.pmk("bob", ROOM, no_recv_sub)}
        alice_creds = {"sig": server.sig("alice"), "pmk": server.pmk("alice", ROOM)}
        async with (
            member(http, server, "bob", **bob_creds) as (bob, _),
            member(http, server, "alice", **alice_creds) as (alice, _),
        ):
            await alice.send(screen_signal("bob", "offer", "sendonly", "a1"))
            relayed, _ = await until(bob, "signal")
            assert "a=content:slides" in relayed["data"]["description"]["sdp"]
            await bob.send(screen_signal("alice", "answer", "recvonly", "b1", marked=False))
            refused, _ = await until(bob, "error")
            assert (refused["errorCode"], refused["ref"]) == (10004, "b1")
            assert "RECV_SUB (128)" in refused["errorMsg"]
            await bob.send(screen_signal("alice", "answer", "inactive", "b2", marked=False))
            relayed, _ = await until(alice, "signal")
            assert relayed["from"] == "bob"


async def test_a_key_for_another_room_is_refused(pmk_server):
    """A renewed privateMapKey must open the same room: another room's is avkit 87."""
    server = pmk_server
    async with httpx.AsyncClient(base_url=server.url, timeout=30) as http:
        creds = {"sig": server.sig("alice"), "pmk": server.pmk("alice", ROOM)}
        async with member(http, server, "alice", **creds) as (alice, _):
            refused = await renew(alice, server.sig("alice"), server.pmk("alice", ROOM + 1))
            assert (refused["module"], refused["errorCode"]) == ("avkit", 87)


async def test_a_string_room_member_renews_with_that_string_room_s_key_only(pmk_server):
    """In string room "<ROOM>" a renewed key must be for that string room: room ROOM's is 87."""
    server = pmk_server

    def key(**room: Any) -> str:
        return gen_private_map_key(server.app_id, server.key, "alice", **room)

    headers = server.headers("alice", pmk=key(room_str=str(ROOM)))
    async with httpx.AsyncClient(base_url=server.url, timeout=30) as http:
        entered = await http.post(f"/v1/str-rooms/{ROOM}/enter", headers=headers)
        assert entered.status_code == 200, entered.text
        async with opened(server, entered.json()["socketToken"]) as alice:
            assert (await frame(alice))["type"] == "welcome"
            refused = await renew(alice, server.sig("alice"), key(room_id=ROOM), ref="n")
            assert (refused["type"], refused["errorCode"]) == ("error", 87)
            renewed = await renew(alice, server.sig("alice"), key(room_str=str(ROOM)), ref="s")
            assert renewed["type"] == "renewed", renewed


async def test_renewing_without_a_key_keeps_the_keys_bits(server, http):
    """A member that entered with a viewer's key and renews its userSig alone stays a viewer."""
    viewer = gen_private_map_key(
        server.app_id, server.key, "alice", room_id=ROOM, privilege=int(Privilege.VIEWER)
    )
    async with (
        member(http, server, "bob", sig=server.sig("bob")) as (_bob, _),
        member(http, server, "alice", sig=server.sig("alice"), pmk=viewer) as (alice, _),
    ):
        renewed = await renew(alice, gen_user_sig(server.app_id, server.key, "alice", 3600))
        assert renewed["privileges"] == int(Privilege.VIEWER)
        await alice.send(offer("bob"))
        refused, _ = await until(alice, "error")
        assert refused["errorCode"] == 10004 and "SEND_AUDIO" in refused["errorMsg"]


# --- TURN ----------------------------------------------------------------------------------------


async def test_turn_credentials_end_with_the_members_and_are_reminted(sqlite_server_factory):
    """Minted TURN usernames end at the credentials' end plus the grace, on enter and on
    renew (never later than the TURN TTL)."""
    server = sqlite_server_factory(
        renew_grace=30.0, ice_servers=("turn:127.0.0.1:3478",), turn_secret=TURN_SECRET
    )
    sig = server.sig("alice", expire=600)
    async with (
        httpx.AsyncClient(base_url=server.url, timeout=30) as http,
        member(http, server, "alice", sig=sig) as (alice, entered),
    ):
        [turn] = entered["iceServers"]
        assert turn["username"] == f"{decode_sig(sig).expires_at + 30}:alice"
        fresh = server.sig("alice", expire=1200)
        renewed = await renew(alice, fresh)
        [turn] = renewed["iceServers"]
        assert turn["username"] == f"{decode_sig(fresh).expires_at + 30}:alice"
        assert turn["credential"] and turn["urls"] == [
            "turn:127.0.0.1:3478?transport=udp",
            "turn:127.0.0.1:3478?transport=tcp",
        ]


# --- the rules, without a server -----------------------------------------------------------------


@pytest.mark.parametrize(
    ("left", "ahead"),
    [(3600.0, 60.0), (120.0, 60.0), (10.0, 5.0), (0.0, 0.0), (-5.0, 0.0)],
)
def test_the_warning_comes_a_minute_ahead_or_half_way(left, ahead):
    """``expiring`` is due a minute before the end, or half-way through what is left."""
    now = 1_700_000_000.0
    assert warn_at(now + left, now) == now + left - ahead


def test_a_turn_credential_ends_with_the_members_within_the_ttl():
    """``until`` shortens a minted TURN credential, never below MIN_TURN_TTL nor past the TTL."""
    settings = Settings(ice_servers=("turn:h:3478",), turn_secret=TURN_SECRET, turn_ttl=600)

    def end(until: float | None) -> int:
        [turn] = ice_servers_for(settings, "alice", 1000.0, until=until)
        return int(turn["username"].split(":")[0])

    assert end(None) == 1600
    assert end(1300.0) == 1300
    assert end(5000.0) == 1600
    assert end(900.0) == 1000 + MIN_TURN_TTL


def test_socket_tokens_carry_the_room_and_the_credentials_ends():
    """A token minted with the room and both ends gives them back; an old one has none."""
    secret = b"s" * 32
    room_uuid = uuid.uuid4()
    common = {"sdk_app_id": 1, "room_uuid": room_uuid, "user_id": "a", "connection_id": "c"}
    token = mint(
        secret, ttl=60, room_id=7, user_sig_expires_at=500, private_map_key_expires_at=400, **common
    )
    claims = verify(secret, token)
    assert (claims.room_id, claims.credentials_expire_at) == (7, 400)
    old = verify(secret, mint(secret, ttl=60, **common))
    assert (old.room_id, old.credentials_expire_at) == (None, None)
