"""Python clients ringing each other through a real server: ring, accept, talk, decline."""

from __future__ import annotations

import asyncio
from typing import Any

import httpx

from tavkit.client.calls import Invitation

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
