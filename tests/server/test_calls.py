"""Calls through a real server: ring, answer, time out, cancel, busy, group, records, events."""

from __future__ import annotations

import asyncio
import json
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import TYPE_CHECKING, Any

import httpx
import pytest
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed

from tavkit.auth import gen_user_sig
from tavkit.errors import AvkitCode, ServerCode
from tavkit.protocol.calls import (
    MAX_CALL_DATA_BYTES,
    MAX_CALLEES,
    parse_call_frame,
    user_subprotocol,
)
from tavkit.webhooks import verify

from ._buses import REDIS_URL, new_prefix
from ._util import eventually, expect_error
from ._webhooks import SECRET, Receiver, start_server

if TYPE_CHECKING:
    from conftest import RunningServer, ServerFactory

TIMEOUT = 15.0
Frame = dict[str, Any]


class UserSocket:
    """A client of ``/v1/ws/user``: the welcome it got and the frames that came after."""

    def __init__(self, ws: ClientConnection, welcome: Frame) -> None:
        self.ws = ws
        self.welcome = welcome
        self.heard: list[Frame] = []
        """Every frame read after the welcome, skipped ones included."""

    async def next(self, kind: str) -> Frame:
        """The next frame of type ``kind`` (others before it are skipped), checked."""
        while True:
            frame: Frame = json.loads(await asyncio.wait_for(self.ws.recv(), TIMEOUT))
            self.heard.append(frame)
            if frame["type"].startswith("call-"):
                parse_call_frame(frame)  # every call frame is well-formed
            if frame["type"] == kind:
                return frame


@asynccontextmanager
async def user_socket(
    server: RunningServer,
    user: str,
    *,
    device: str = "default",
    sig: str | None = None,
    after: int | None = None,
) -> AsyncIterator[UserSocket]:
    """``user``'s user socket, past its welcome (resuming after ``after`` if given)."""
    creds = user_subprotocol(server.app_id, user, sig or server.sig(user), device, after)
    url = server.url.replace("http://", "ws://", 1) + "/v1/ws/user"
    async with connect(
        url, proxy=None, open_timeout=TIMEOUT, close_timeout=2, subprotocols=["tavkit.v1", creds]
    ) as ws:
        welcome: Frame = json.loads(await asyncio.wait_for(ws.recv(), TIMEOUT))
        yield UserSocket(ws, welcome)


async def ring(
    http: httpx.AsyncClient, server: RunningServer, caller: str, callees: list[str], **extra: Any
) -> Frame:
    """``POST /v1/calls``, asserting success; the call."""
    body = {"callees": callees, "media": "video", **extra}
    response = await http.post("/v1/calls", headers=server.headers(caller), json=body)
    assert response.status_code == 200, response.text
    call: Frame = response.json()["call"]
    return call


async def act(
    http: httpx.AsyncClient, server: RunningServer, user: str, call: Frame, verb: str, **body: Any
) -> httpx.Response:
    """``POST /v1/calls/{uuid}/{verb}`` as ``user``."""
    return await http.post(
        f"/v1/calls/{call['callId']}/{verb}", headers=server.headers(user), json=body or None
    )


async def ok(response: httpx.Response) -> Frame:
    """The call of a successful answer."""
    assert response.status_code == 200, response.text
    call: Frame = response.json()["call"]
    return call


async def record(http: httpx.AsyncClient, server: RunningServer, call: Frame) -> Frame:
    """The call's record, as the admin reads it."""
    response = await http.get(f"/v1/calls/{call['callId']}", headers=server.admin_headers())
    assert response.status_code == 200, response.text
    found: Frame = response.json()["call"]
    return found


async def call_events(http: httpx.AsyncClient, server: RunningServer, call: Frame) -> list[Frame]:
    """``GET /v1/calls/{uuid}/events`` as the caller."""
    response = await http.get(
        f"/v1/calls/{call['callId']}/events", headers=server.headers(call["caller"])
    )
    assert response.status_code == 200, response.text
    events: list[Frame] = response.json()["events"]
    return events


def types(events: list[Frame]) -> list[str]:
    """Each event's type and userId, in order."""
    return [
        f"{e['type']}:{e['data']['userId']}" if e["data"]["userId"] else e["type"] for e in events
    ]


async def enter(http: httpx.AsyncClient, server: RunningServer, user: str, room: int) -> None:
    """``user`` enters ``room``."""
    response = await http.post(f"/v1/rooms/{room}/enter", headers=server.headers(user))
    assert response.status_code == 200, response.text


async def leave(http: httpx.AsyncClient, server: RunningServer, user: str, room: int) -> None:
    """``user`` exits ``room``."""
    response = await http.post(f"/v1/rooms/{room}/exit", headers=server.headers(user))
    assert response.status_code == 200, response.text


def outcomes(call: Frame) -> dict[str, str]:
    """Each callee's outcome."""
    return {c["userId"]: c["outcome"] for c in call["callees"]}


async def test_ring_accept_and_the_room_emptying_ends_the_call(
    server: RunningServer, client: httpx.AsyncClient
):
    """Bob is rung on his socket, accepts, both meet in the room; when it empties the call ends."""
    async with user_socket(server, "alice") as alice, user_socket(server, "bob") as bob:
        call = await ring(client, server, "alice", ["bob"], data={"topic": "standup"})
        assert call["state"] == "ringing" and outcomes(call) == {"bob": "ringing"}
        invite = await bob.next("call-invite")
        assert invite["call"]["callId"] == call["callId"]
        assert invite["call"]["caller"] == "alice" and invite["call"]["data"] == {
            "topic": "standup"
        }
        room = call["roomId"]
        await enter(client, server, "alice", room)

        accepted = await ok(await act(client, server, "bob", call, "accept"))
        assert accepted["state"] == "accepted" and accepted["roomId"] == room
        frame = await alice.next("call-accepted")
        assert frame["userId"] == "bob" and frame["call"]["state"] == "accepted"
        await enter(client, server, "bob", room)

        await leave(client, server, "bob", room)
        await leave(client, server, "alice", room)
        ended = await alice.next("call-ended")
        assert ended["reason"] == "empty"
        assert (await bob.next("call-ended"))["call"]["state"] == "ended"

    found = await record(client, server, call)
    assert (found["state"], found["endReason"]) == ("ended", "empty")
    assert found["answeredAt"] is not None and found["duration"] is not None
    (bob_record,) = found["callees"]
    assert bob_record["outcome"] == "accepted" and bob_record["duration"] is not None
    events = await call_events(client, server, call)
    assert types(events) == ["call.ringing", "call.accepted:bob", "call.ended"]
    assert all(e["roomUuid"] == found["roomUuid"] for e in events)

    timeline = await client.get(
        f"/v1/sessions/{found['roomUuid']}/events", headers=server.admin_headers()
    )
    assert timeline.status_code == 200, timeline.text
    seen = [e["type"] for e in timeline.json()["events"]]
    assert seen[:3] == ["room.opened", "call.ringing", "member.joined"]
    assert "call.ended" in seen
    assert [e["sessionSeq"] for e in timeline.json()["events"]] == list(range(1, len(seen) + 1))


async def test_decline_tells_the_caller_and_ends_the_call(
    server: RunningServer, client: httpx.AsyncClient
):
    """Bob declines with a reason: Alice hears it, the call is declined, its record says why."""
    async with user_socket(server, "alice") as alice, user_socket(server, "bob") as bob:
        call = await ring(client, server, "alice", ["bob"])
        await bob.next("call-invite")
        declined = await ok(
            await act(client, server, "bob", call, "decline", reason="in a meeting")
        )
        assert declined["state"] == "declined"
        frame = await alice.next("call-declined")
        assert (frame["userId"], frame["reason"]) == ("bob", "in a meeting")
        expect_error(await act(client, server, "bob", call, "accept"), ServerCode.ROOM_CLOSED)
    found = await record(client, server, call)
    assert found["callees"][0]["reason"] == "in a meeting" and found["endReason"] == "declined"
    assert types(await call_events(client, server, call)) == ["call.ringing", "call.declined:bob"]


async def test_no_answer_times_out_for_both_sides(server: RunningServer, client: httpx.AsyncClient):
    """Nobody answers within the call's timeout: both sides get call-timeout, the call times out."""
    async with user_socket(server, "alice") as alice, user_socket(server, "bob") as bob:
        call = await ring(client, server, "alice", ["bob"], timeout=0.3)
        await bob.next("call-invite")
        assert (await bob.next("call-timeout"))["userId"] == "bob"
        frame = await alice.next("call-timeout")
        assert frame["call"]["state"] == "timeout"
        expect_error(await act(client, server, "bob", call, "accept"), ServerCode.ROOM_CLOSED)
    found = await record(client, server, call)
    assert (found["state"], outcomes(found)) == ("timeout", {"bob": "timeout"})
    assert found["answeredAt"] is None and found["duration"] is None
    assert types(await call_events(client, server, call)) == ["call.ringing", "call.timeout:bob"]


async def test_cancel_before_an_answer(server: RunningServer, client: httpx.AsyncClient):
    """The caller cancels while it rings: the callee's ringing stops, nobody can accept it."""
    async with user_socket(server, "bob") as bob:
        call = await ring(client, server, "alice", ["bob"])
        await bob.next("call-invite")
        cancelled = await ok(await act(client, server, "alice", call, "cancel"))
        assert cancelled["state"] == "cancelled" and outcomes(cancelled) == {"bob": "cancelled"}
        assert (await bob.next("call-cancelled"))["call"]["callId"] == call["callId"]
        expect_error(await act(client, server, "bob", call, "accept"), ServerCode.ROOM_CLOSED)
        expect_error(await act(client, server, "alice", call, "cancel"), ServerCode.ROOM_CLOSED)
    assert types(await call_events(client, server, call)) == ["call.ringing", "call.cancelled"]


async def test_a_callee_in_another_call_is_busy(server: RunningServer, client: httpx.AsyncClient):
    """Bob is in a call: Carol's call to him is busy at once; declining "busy" is busy too."""
    async with user_socket(server, "carol") as carol:
        first = await ring(client, server, "alice", ["bob"])
        await ok(await act(client, server, "bob", first, "accept"))
        second = await ring(client, server, "carol", ["bob"])
        assert second["state"] == "busy" and outcomes(second) == {"bob": "busy"}
        frame = await carol.next("call-declined")
        assert (frame["userId"], frame["reason"]) == ("bob", "busy")
        third = await ring(client, server, "carol", ["dave"])
        busy = await ok(await act(client, server, "dave", third, "decline", reason="busy"))
        assert busy["state"] == "busy"
    assert types(await call_events(client, server, second)) == ["call.ringing", "call.busy:bob"]
    assert types(await call_events(client, server, third)) == ["call.ringing", "call.busy:dave"]


async def test_a_callee_found_busy_is_not_told_of_the_call_live_or_replayed(
    server: RunningServer, client: httpx.AsyncClient
):
    """Carol rings Bob (in Alice's call) and Dave: Bob was never rung, so his socket hears
    nothing of Carol's call, nor does a resume replay it; Dave hears Bob was busy."""
    first = await ring(client, server, "alice", ["bob"])
    await ok(await act(client, server, "bob", first, "accept"))
    async with user_socket(server, "bob") as bob, user_socket(server, "dave") as dave:
        second = await ring(client, server, "carol", ["bob", "dave"])
        busy = await dave.next("call-declined")
        assert (busy["call"]["callId"], busy["userId"], busy["reason"]) == (
            second["callId"],
            "bob",
            "busy",
        )
        await ok(await act(client, server, "dave", second, "accept"))
        await ok(await act(client, server, "carol", second, "hangup"))
        await dave.next("call-ended")
        await ok(await act(client, server, "alice", first, "hangup"))
        await bob.next("call-ended")
        assert {f["call"]["callId"] for f in bob.heard} == {first["callId"]}
        after = bob.welcome["lastSeq"]
    async with user_socket(server, "bob", after=after) as resumed:
        assert resumed.welcome["resumed"] is True
        await resumed.next("call-ended")
        assert {f["call"]["callId"] for f in resumed.heard} == {first["callId"]}


async def test_group_call_one_accepts_one_declines_then_the_caller_hangs_up(
    server: RunningServer, client: httpx.AsyncClient
):
    """Bob accepts, Carol declines, each keeps their outcome; the caller hangs up for all."""
    async with (
        user_socket(server, "alice") as alice,
        user_socket(server, "bob") as bob,
        user_socket(server, "carol") as carol,
    ):
        call = await ring(client, server, "alice", ["bob", "carol"])
        await bob.next("call-invite")
        await carol.next("call-invite")
        await ok(await act(client, server, "bob", call, "accept"))
        declined = await ok(await act(client, server, "carol", call, "decline"))
        assert declined["state"] == "accepted"
        assert outcomes(declined) == {"bob": "accepted", "carol": "declined"}
        await enter(client, server, "alice", call["roomId"])
        await enter(client, server, "bob", call["roomId"])
        expect_error(await act(client, server, "bob", call, "hangup"), AvkitCode.NO_PERMISSION)
        ended = await ok(await act(client, server, "alice", call, "hangup"))
        assert (ended["state"], ended["endReason"]) == ("ended", "hangup")
        for sock in (alice, bob, carol):
            assert (await sock.next("call-ended"))["reason"] == "hangup"
    found = await record(client, server, call)
    assert outcomes(found) == {"bob": "accepted", "carol": "declined"}
    assert found["callees"][0]["endedAt"] == found["endedAt"]
    assert types(await call_events(client, server, call)) == [
        "call.ringing",
        "call.accepted:bob",
        "call.declined:carol",
        "call.ended",
    ]
    history = await client.get("/v1/calls", headers=server.headers("carol"))
    assert [c["callId"] for c in history.json()["calls"]] == [call["callId"]]


async def test_the_caller_leaving_the_room_before_an_answer_cancels(
    server: RunningServer, client: httpx.AsyncClient
):
    """The caller enters the call's room and leaves it while it rings: the call is cancelled."""
    async with user_socket(server, "bob") as bob:
        call = await ring(client, server, "alice", ["bob"])
        await enter(client, server, "alice", call["roomId"])
        await leave(client, server, "alice", call["roomId"])
        frame = await bob.next("call-cancelled")
        assert frame["call"]["endReason"] == "caller-left"


async def test_strangers_and_wrong_roles_are_refused(
    server: RunningServer, client: httpx.AsyncClient
):
    """Only a callee answers, only the caller cancels, only participants and the admin read."""
    call = await ring(client, server, "alice", ["bob"])
    for user, verb in (
        ("mallory", "accept"),
        ("mallory", "decline"),
        ("alice", "accept"),
        ("mallory", "cancel"),
        ("bob", "cancel"),
        ("bob", "hangup"),
    ):
        expect_error(await act(client, server, user, call, verb), AvkitCode.NO_PERMISSION)
    for path in (f"/v1/calls/{call['callId']}", f"/v1/calls/{call['callId']}/events"):
        response = await client.get(path, headers=server.headers("mallory"))
        expect_error(response, AvkitCode.NO_PERMISSION)
    theirs = await client.get("/v1/calls?user=bob", headers=server.headers("mallory"))
    expect_error(theirs, AvkitCode.NO_PERMISSION)
    mine = await client.get("/v1/calls", headers=server.headers("mallory"))
    assert mine.json()["calls"] == []
    every = await client.get("/v1/calls?user=bob", headers=server.admin_headers())
    assert [c["callId"] for c in every.json()["calls"]] == [call["callId"]]
    timeline = await client.get(
        f"/v1/sessions/{(await record(client, server, call))['roomUuid']}/events",
        headers=server.headers("alice"),
    )
    expect_error(timeline, ServerCode.UNAUTHORISED)
    unsigned = await client.post("/v1/calls", json={"callees": ["bob"], "media": "audio"})
    expect_error(unsigned, ServerCode.UNAUTHORISED)
    assert outcomes(await record(client, server, call)) == {"bob": "ringing"}


@pytest.mark.parametrize(
    ("body", "code"),
    [
        ({"media": "video"}, ServerCode.INVALID_PARAMETER),
        ({"callees": [], "media": "video"}, ServerCode.INVALID_PARAMETER),
        ({"callees": ["bob"], "media": "hologram"}, ServerCode.INVALID_PARAMETER),
        ({"callees": ["bob", "bob"], "media": "audio"}, ServerCode.INVALID_PARAMETER),
        ({"callees": ["alice"], "media": "audio"}, ServerCode.INVALID_PARAMETER),
        ({"callees": ["b c"], "media": "audio"}, ServerCode.INVALID_PARAMETER),
        ({"callees": [7], "media": "audio"}, ServerCode.INVALID_PARAMETER),
        ({"callees": ["__rec.x"], "media": "audio"}, ServerCode.INVALID_PARAMETER),
        (
            {"callees": [f"u{i}" for i in range(MAX_CALLEES + 1)], "media": "audio"},
            ServerCode.INVALID_PARAMETER,
        ),
        ({"callees": ["bob"], "media": "audio", "roomId": 0}, ServerCode.INVALID_PARAMETER),
        ({"callees": ["bob"], "media": "audio", "roomId": 2**32}, ServerCode.INVALID_PARAMETER),
        ({"callees": ["bob"], "media": "audio", "timeout": -1}, ServerCode.INVALID_PARAMETER),
        ({"callees": ["bob"], "media": "audio", "timeout": 10**6}, ServerCode.INVALID_PARAMETER),
        (
            {"callees": ["bob"], "media": "audio", "data": "x" * MAX_CALL_DATA_BYTES},
            ServerCode.INVALID_PARAMETER,
        ),
        ([1, 2], ServerCode.BAD_REQUEST),
    ],
)
async def test_bad_call_requests_get_the_seed_code(
    sqlite_server: RunningServer, body: Any, code: ServerCode
):
    """Each malformed ring is refused with its seed code, never a 500, and rings nobody."""
    async with httpx.AsyncClient(base_url=sqlite_server.url, timeout=30) as http:
        response = await http.post("/v1/calls", headers=sqlite_server.headers("alice"), json=body)
        expect_error(response, code)
        history = await http.get("/v1/calls", headers=sqlite_server.admin_headers())
        assert history.json()["calls"] == []


async def test_bad_call_actions_get_the_seed_code(sqlite_server: RunningServer):
    """Unknown calls, bad UUIDs, bodies and reasons: seed codes, never a 500."""
    async with httpx.AsyncClient(base_url=sqlite_server.url, timeout=30) as http:
        headers = sqlite_server.headers("bob")
        unknown = f"/v1/calls/{uuid.uuid4()}"
        expect_error(
            await http.post(f"{unknown}/accept", headers=headers), ServerCode.SESSION_NOT_FOUND
        )
        expect_error(await http.get(unknown, headers=headers), ServerCode.SESSION_NOT_FOUND)
        expect_error(
            await http.post("/v1/calls/nope/accept", headers=headers), ServerCode.INVALID_PARAMETER
        )
        call = await ring(http, sqlite_server, "alice", ["bob"])
        path = f"/v1/calls/{call['callId']}/decline"
        expect_error(await http.post(path, headers=headers, content=b"{"), ServerCode.JSON_DECODE)
        expect_error(
            await http.post(path, headers=headers, json={"reason": 5}), ServerCode.INVALID_PARAMETER
        )
        expect_error(
            await http.post(path, headers=headers, json={"reason": "x" * 65}),
            ServerCode.INVALID_PARAMETER,
        )
        expect_error(
            await http.get("/v1/calls?since=-1", headers=headers), ServerCode.INVALID_PARAMETER
        )
        expect_error(
            await http.get("/v1/calls?user=a%20b", headers=headers), ServerCode.INVALID_PARAMETER
        )


async def test_user_socket_refuses_bad_credentials_and_keeps_one_socket_per_device(
    sqlite_server: RunningServer,
):
    """A forged userSig is refused (4401); a second socket of a device closes the first (4001)."""
    server = sqlite_server
    with pytest.raises(ConnectionClosed) as refused:
        async with user_socket(server, "bob", sig=server.sig("eve")) as sock:
            assert sock.welcome["type"] == "error"
            await sock.next("never")
    assert refused.value.rcvd is not None and refused.value.rcvd.code == 4401
    async with (  # opened in this order: the second phone socket is the newer
        user_socket(server, "bob", device="phone") as phone,
        user_socket(server, "bob", device="laptop") as laptop,
        user_socket(server, "bob", device="phone") as newer,
    ):
        with pytest.raises(ConnectionClosed) as closed:
            await phone.next("never")
        assert closed.value.rcvd is not None and closed.value.rcvd.code == 4001
        async with httpx.AsyncClient(base_url=server.url, timeout=30) as http:
            call = await ring(http, server, "alice", ["bob"])
        for sock in (laptop, newer):
            assert (await sock.next("call-invite"))["call"]["callId"] == call["callId"]


async def test_a_socket_opened_late_is_rung_by_its_welcome(sqlite_server: RunningServer):
    """A callee whose socket opens (or reopens) while a call rings finds it in user-welcome."""
    async with httpx.AsyncClient(base_url=sqlite_server.url, timeout=30) as http:
        call = await ring(http, sqlite_server, "alice", ["bob"])
        async with user_socket(sqlite_server, "bob") as bob:
            assert bob.welcome["type"] == "user-welcome"
            assert [c["callId"] for c in bob.welcome["ringing"]] == [call["callId"]]
            await bob.ws.send(json.dumps({"type": "ping", "t": 1.5}))
            assert (await bob.next("pong"))["t"] == 1.5
            await bob.ws.send("not json")
            assert (await bob.next("error"))["errorCode"] == int(ServerCode.JSON_DECODE)
        await ok(await act(http, sqlite_server, "alice", call, "cancel"))
        async with user_socket(sqlite_server, "bob") as bob:
            assert bob.welcome["ringing"] == []


async def test_a_call_in_a_given_room_rings_there_and_its_room_is_swept_after(
    sqlite_server: RunningServer,
):
    """A call with a roomId rings in that room; once it is over, the empty session closes."""
    async with httpx.AsyncClient(base_url=sqlite_server.url, timeout=30) as http:
        call = await ring(http, sqlite_server, "alice", ["bob"], roomId=4242)
        assert call["roomId"] == 4242
        await ok(await act(http, sqlite_server, "bob", call, "decline"))
        room_uuid = (await record(http, sqlite_server, call))["roomUuid"]

        async def closed() -> bool:
            response = await http.get(
                f"/v1/sessions/{room_uuid}", headers=sqlite_server.admin_headers()
            )
            return response.json()["closedAt"] is not None

        await eventually(closed)


async def test_a_calls_webhooks_arrive_signed_in_order_with_its_events(
    server_factory: ServerFactory, receiver: Receiver
):
    """A real receiver gets the call's events signed, in order, as GET .../events lists them."""
    await receiver.start()
    server = await start_server(server_factory, receiver)
    async with httpx.AsyncClient(base_url=server.url, timeout=30) as http:
        call = await ring(http, server, "alice", ["bob", "carol"])
        await ok(await act(http, server, "carol", call, "decline", reason="busy"))
        await ok(await act(http, server, "bob", call, "accept"))
        await enter(http, server, "alice", call["roomId"])
        await ok(await act(http, server, "alice", call, "hangup"))
        listed = await call_events(http, server, call)
    assert types(listed) == ["call.ringing", "call.busy:carol", "call.accepted:bob", "call.ended"]

    async def arrived() -> list[Frame] | None:
        bodies = [b for b in receiver.accepted() if b["type"].startswith("call.")]
        return bodies if len(bodies) == len(listed) else None

    delivered = await eventually(arrived, within=30)
    assert delivered == listed
    for d in receiver.deliveries:
        verify(d.body, d.signature, SECRET)  # raises if the signature does not match


async def test_a_callee_on_another_replica_is_rung_through_redis(server_factory: ServerFactory):
    """Two replicas on one database and Redis: a call made on one rings a socket on the other."""
    prefix = new_prefix()
    first = server_factory(redis_url=REDIS_URL, redis_prefix=prefix, replica_name="one")
    second = server_factory(
        redis_url=REDIS_URL,
        redis_prefix=prefix,
        replica_name="two",
        apps=first.settings.apps,
        admin_key=first.settings.admin_key,
    )
    async with (
        user_socket(second, "bob") as bob,
        user_socket(second, "alice") as alice,
        httpx.AsyncClient(base_url=first.url, timeout=30) as http,
    ):
        call = await ring(http, first, "alice", ["bob"], timeout=0.5)
        assert (await bob.next("call-invite"))["call"]["callId"] == call["callId"]
        assert (await alice.next("call-timeout"))["userId"] == "bob"


async def test_a_call_whose_replica_stopped_still_times_out_on_another(
    server_factory: ServerFactory,
):
    """The replica that rang is gone before the timeout: another replica's sweep times it out."""
    first = server_factory(replica_name="one")
    second = server_factory(
        replica_name="two", apps=first.settings.apps, admin_key=first.settings.admin_key
    )
    async with httpx.AsyncClient(base_url=first.url, timeout=30) as http:
        call = await ring(http, first, "alice", ["bob"], timeout=0.2)
    await asyncio.to_thread(first.stop)
    async with httpx.AsyncClient(base_url=second.url, timeout=30) as http:

        async def timed_out() -> bool:
            return (await record(http, second, call))["state"] == "timeout"

        await eventually(timed_out, within=30, every=0.5)  # within the history rate limit
        assert types(await call_events(http, second, call)) == ["call.ringing", "call.timeout:bob"]


@pytest.mark.parametrize(
    "offer",
    [
        "tavkit.user.!!!",
        "tavkit.user.bm90IGpzb24",  # "not json"
        "tavkit.user.WzEsMl0",  # [1,2]
        "tavkit.user." + "A" * 7_000,  # over our limit, under the handshake's
        "tavkit.token.abc",
    ],
)
async def test_a_user_socket_with_malformed_credentials_is_refused(
    sqlite_server: RunningServer, offer: str
):
    """Credentials that are not the JSON object they should be: one error frame, then 4401."""
    url = sqlite_server.url.replace("http://", "ws://", 1) + "/v1/ws/user"
    async with connect(
        url, proxy=None, open_timeout=TIMEOUT, close_timeout=2, subprotocols=["tavkit.v1", offer]
    ) as ws:
        frame = json.loads(await asyncio.wait_for(ws.recv(), TIMEOUT))
        assert (frame["type"], frame["errorCode"]) == ("error", int(ServerCode.UNAUTHORISED))
        with pytest.raises(ConnectionClosed) as closed:
            await asyncio.wait_for(ws.recv(), TIMEOUT)
    assert closed.value.rcvd is not None and closed.value.rcvd.code == 4401


async def test_a_user_socket_for_a_bad_device_or_expired_sig_is_refused(
    sqlite_server: RunningServer,
):
    """A device outside the userId alphabet, or a userSig past its end: error, then 4401."""
    app = sqlite_server.settings.apps[0]
    expired = gen_user_sig(app.sdk_app_id, app.key, "bob", 60, now=1_700_000_000)
    for device, sig in (("my phone", None), ("phone", expired)):
        with pytest.raises(ConnectionClosed) as refused:
            async with user_socket(sqlite_server, "bob", device=device, sig=sig) as sock:
                assert sock.welcome["errorCode"] == int(ServerCode.UNAUTHORISED)
                await sock.next("never")
        assert refused.value.rcvd is not None and refused.value.rcvd.code == 4401
