"""Python clients ringing each other through a real server: ring, accept, talk, decline."""

from __future__ import annotations

import asyncio
import contextlib
from typing import Any

import httpx

from tavkit.auth import decode_sig
from tavkit.client import TAvKit
from tavkit.client.api import Credentials
from tavkit.client.calls import Invitation, UserSocket

from ._util import make_kit, receiving, until


async def call_record(server: Any, call_id: str) -> dict[str, Any]:
    """The call's record as the admin reads it."""
    async with httpx.AsyncClient(base_url=server.url, timeout=30) as http:
        response = await http.get(f"/v1/calls/{call_id}", headers=server.admin_headers())
        events = await http.get(f"/v1/calls/{call_id}/events", headers=server.admin_headers())
    assert response.status_code == 200, response.text
    found: dict[str, Any] = response.json()["call"]
    found["events"] = [e["type"] for e in events.json()["events"]]
    return found


async def first_invitation(invitations: Any) -> Invitation:
    """The first invitation the iterator yields."""
    invitation: Invitation = await anext(invitations)
    return invitation


def creds(server: Any, user: str) -> dict[str, Any]:
    """The start options of ``user`` on ``server``."""
    return {"sdk_app_id": server.app_id, "user_id": user, "user_sig": server.sig(user)}


async def test_ring_accept_talk_and_the_callers_hangup_ends_it_for_both(
    sqlite_server_factory: Any,
) -> None:
    """Bob's listen() yields Alice's call; he accepts, both decode each other; she hangs up."""
    server = sqlite_server_factory()
    async with make_kit(server.url) as alice, make_kit(server.url) as bob:
        invitations = bob.listen(**creds(server, "bob"))
        ringing = asyncio.create_task(first_invitation(invitations))
        handle = await alice.call(callees=["bob"], media="video", **creds(server, "alice"))
        invitation = await asyncio.wait_for(ringing, 15)
        assert invitation.caller == "alice" and invitation.call.call_id == handle.call_id
        accepted = await invitation.accept()
        assert accepted.state == "accepted" and accepted.room_id == handle.call.room_id
        assert await asyncio.wait_for(handle.result(), 15) == "accepted"
        await until(receiving(alice, "bob", video=20, audio=40), "alice decodes bob")
        await until(receiving(bob, "alice", video=20, audio=40), "bob decodes alice")
        assert alice.room_uuid == bob.room_uuid

        following = asyncio.create_task(anext(invitations, None))
        await handle.hangup()
        assert await asyncio.wait_for(handle.ended(), 15) == "ended"
        assert await asyncio.wait_for(following, 15) is None  # bob left and stopped listening
        await asyncio.wait_for(alice.wait_closed(), 15)
        await asyncio.wait_for(bob.wait_closed(), 15)
        await handle.aclose()
    found = await call_record(server, handle.call_id)
    assert (found["state"], found["endReason"]) == ("ended", "hangup")
    assert found["callees"][0]["duration"] is not None
    assert found["events"] == ["call.ringing", "call.accepted", "call.ended"]


async def test_a_declined_call_tells_the_caller_and_leaves_the_room(
    sqlite_server_factory: Any,
) -> None:
    """Bob declines from listen(): Alice's result is declined and her client leaves the room."""
    server = sqlite_server_factory()
    async with make_kit(server.url) as alice, make_kit(server.url) as bob:
        handle = await alice.call(callees=["bob"], media="audio", **creds(server, "alice"))
        invitations = bob.listen(**creds(server, "bob"))
        invitation = await asyncio.wait_for(first_invitation(invitations), 15)
        await invitation.decline(reason="busy")
        await invitations.aclose()
        assert await asyncio.wait_for(handle.result(), 15) == "busy"
        await asyncio.wait_for(alice.wait_closed(), 15)
        await handle.aclose()
    found = await call_record(server, handle.call_id)
    assert found["events"] == ["call.ringing", "call.busy"]


async def test_a_call_in_a_string_room_of_digits_meets_there_not_in_the_number(
    sqlite_server_factory: Any,
) -> None:
    """Alice rings Bob in string room "4242": both talk in that room, a member of
    numeric room 4242 sees neither, and the record names the string room."""
    server = sqlite_server_factory()
    async with (
        make_kit(server.url) as alice,
        make_kit(server.url) as bob,
        make_kit(server.url) as carol,
    ):
        await carol.start(room_id=4242, **creds(server, "carol"))
        invitations = bob.listen(**creds(server, "bob"))
        ringing = asyncio.create_task(first_invitation(invitations))
        handle = await alice.call(callees=["bob"], room_id="4242", **creds(server, "alice"))
        assert handle.call.room_id == "4242"
        invitation = await asyncio.wait_for(ringing, 15)
        assert invitation.call.room_id == "4242"
        await invitation.accept()
        await until(receiving(alice, "bob", video=10, audio=20), "alice decodes bob")
        await until(receiving(bob, "alice", video=10, audio=20), "bob decodes alice")
        assert alice.room_uuid == bob.room_uuid != carol.room_uuid
        assert carol.members == []
        await handle.hangup()
        await asyncio.wait_for(handle.ended(), 15)
        await handle.aclose()
        await invitations.aclose()
    found = await call_record(server, handle.call_id)
    assert found["roomId"] == "4242" and found["state"] == "ended"


class Relay:
    """A TCP relay on loopback whose links can be cut and whose target can change."""

    def __init__(self, port: int) -> None:
        self.port = port
        self.open = asyncio.Event()
        self.open.set()
        self._links: list[asyncio.StreamWriter] = []
        self._server: asyncio.Server | None = None

    async def start(self) -> str:
        """Listen on a free port; the relay's http URL."""
        self._server = await asyncio.start_server(self._link, "127.0.0.1", 0)
        return f"http://127.0.0.1:{self._server.sockets[0].getsockname()[1]}"

    def cut(self, port: int) -> None:
        """Drop every link, hold new ones until ``open`` is set, then relay to ``port``."""
        self.open.clear()
        self.port = port
        for writer in self._links:
            writer.transport.abort()
        self._links.clear()

    async def _link(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await self.open.wait()
        up_reader, up_writer = await asyncio.open_connection("127.0.0.1", self.port)
        self._links += [writer, up_writer]

        async def pipe(src: asyncio.StreamReader, dst: asyncio.StreamWriter) -> None:
            with contextlib.suppress(OSError):
                while data := await src.read(65536):
                    dst.write(data)
                    await dst.drain()
            dst.close()

        await asyncio.gather(pipe(reader, up_writer), pipe(up_reader, writer))

    async def aclose(self) -> None:
        """Stop listening and drop every link."""
        self.cut(self.port)
        assert self._server is not None
        self._server.close()


async def test_a_dropped_user_socket_resumes_on_another_replica_with_what_it_missed(
    sqlite_server_factory: Any,
) -> None:
    """The Python user socket drops; reopened (on another replica of the same database) with
    its after, it yields the frame it missed, not the one it had, and ends on the next."""
    first = sqlite_server_factory()
    second = sqlite_server_factory(apps=first.settings.apps, admin_key=first.settings.admin_key)
    relay = Relay(first.port)
    url = await relay.start()
    socket = await UserSocket.open(url, Credentials(first.app_id, "bob", first.sig("bob")))
    frames = socket.frames()
    try:
        async with httpx.AsyncClient(base_url=first.url, timeout=30) as http:

            async def post(user: str, path: str, body: dict[str, Any]) -> dict[str, Any]:
                response = await http.post(path, headers=first.headers(user), json=body)
                assert response.status_code == 200, response.text
                return response.json()["call"]  # type: ignore[no-any-return]

            call = await post("alice", "/v1/calls", {"callees": ["bob"], "media": "audio"})
            invite = await asyncio.wait_for(anext(frames), 15)
            assert (invite.type, invite.call.call_id) == ("call-invite", call["callId"])
            relay.cut(second.port)  # bob's link drops; his socket will reopen on `second`
            await post("alice", f"/v1/calls/{call['callId']}/cancel", {})
            relay.open.set()
            missed = await asyncio.wait_for(anext(frames), 15)
            assert (missed.type, missed.call.state) == ("call-cancelled", "cancelled")
            assert invite.seq is not None and missed.seq is not None and missed.seq > invite.seq
            assert socket.last_seq == missed.seq
    finally:
        await socket.aclose()
        await relay.aclose()


class RenewingUser:
    """A listener whose ``on_user_sig_expired`` gives a fresh, long userSig."""

    def __init__(self, server: Any, user_id: str) -> None:
        self.server = server
        self.user_id = user_id
        self.asked = 0

    async def on_user_sig_expired(self) -> str:
        self.asked += 1
        sig: str = self.server.sig(self.user_id, expire=3600)
        return sig


async def test_a_listening_user_socket_renews_its_user_sig_and_is_rung_after_the_old_end(
    sqlite_server_factory: Any,
) -> None:
    """Bob listens with a userSig that ends in seconds and renews it through
    on_user_sig_expired; Carol, whose userSig ends after his, does not renew and her
    user socket closes. Bob's stays: he is rung after that, accepts (with the renewed
    userSig) and talks."""
    server = sqlite_server_factory(renew_grace=1.0)
    bob_sig, carol_sig = server.sig("bob", expire=4), server.sig("carol", expire=5)
    assert decode_sig(carol_sig).expires_at > decode_sig(bob_sig).expires_at
    renewing = RenewingUser(server, "bob")
    async with make_kit(server.url) as alice, make_kit(server.url) as bob:
        bobs = bob.listen(**{**creds(server, "bob"), "user_sig": bob_sig}, listener=renewing)
        ringing = asyncio.create_task(first_invitation(bobs))
        carols = TAvKit(server.url).listen(**{**creds(server, "carol"), "user_sig": carol_sig})
        assert await asyncio.wait_for(anext(carols, None), 30) is None  # closed: not renewed
        assert renewing.asked == 1 and not ringing.done()

        handle = await alice.call(callees=["bob"], media="audio", **creds(server, "alice"))
        invitation = await asyncio.wait_for(ringing, 15)
        await invitation.accept()
        assert await asyncio.wait_for(handle.result(), 15) == "accepted"
        await until(receiving(alice, "bob", video=0, audio=20), "alice hears bob")
        await handle.hangup()
        await asyncio.wait_for(handle.ended(), 15)
        await handle.aclose()
        await bobs.aclose()
