"""Room semantics over REST: replace, move, close after the grace, admin close and remove."""

from __future__ import annotations

import uuid
from typing import TYPE_CHECKING, Any

import httpx

from tavkit.errors import ServerCode
from tavkit.server.signaling.tokens import load_or_create_secret, verify

from ._util import eventually, expect_error, session_of

if TYPE_CHECKING:
    from conftest import RunningServer, ServerFactory


async def enter(client: httpx.AsyncClient, server: RunningServer, user: str, room: int) -> dict:
    """Enter ``room`` as ``user``, asserting success."""
    response = await client.post(f"/v1/rooms/{room}/enter", headers=server.headers(user))
    assert response.status_code == 200, response.text
    return response.json()


def kinds(session: dict[str, Any]) -> list[tuple[str, str | None, str | None]]:
    """The session's event log as (kind, userId, detail) tuples."""
    return [(e["kind"], e["userId"], e["detail"]) for e in session["events"]]


async def test_entering_again_replaces_the_old_connection(client, server):
    """The same user entering again keeps one membership and logs the replacement."""
    secret = load_or_create_secret(server.settings.data_dir)
    first = await enter(client, server, "alice", 10)
    second = await enter(client, server, "alice", 10)
    assert second["roomUuid"] == first["roomUuid"]
    assert second["members"] == []  # alice does not see her old self
    old = verify(secret, first["socketToken"]).connection_id
    new = verify(secret, second["socketToken"]).connection_id
    assert old != new
    users = await client.get("/v1/rooms/10/users", headers=server.headers("alice"))
    assert [m["userId"] for m in users.json()["members"]] == ["alice"]
    session = await session_of(client, first["roomUuid"], server.headers("alice"))
    assert [(m["userId"], m["leaveReason"]) for m in session["members"]] == [
        ("alice", "replaced"),
        ("alice", None),
    ]
    assert [k for k, _, _ in kinds(session)] == ["opened", "joined", "replaced", "joined"]


async def test_entering_another_room_moves_the_user(client, server):
    """A user is in one room per app: entering room B leaves room A with reason moved."""
    room_a = (await enter(client, server, "alice", 1))["roomUuid"]
    room_b = (await enter(client, server, "alice", 2))["roomUuid"]
    assert room_a != room_b
    session_a = await session_of(client, room_a, server.headers("alice"))
    assert session_a["members"][0]["leaveReason"] == "moved"
    assert ("left", "alice", "moved") in kinds(session_a)
    response = await client.post("/v1/rooms/1/heartbeat", headers=server.headers("alice"))
    expect_error(response, ServerCode.ROOM_MISMATCH)

    async def closed() -> dict[str, Any] | None:
        body = await session_of(client, room_a, server.headers("alice"))
        return body if body["closedAt"] is not None else None

    session_a = await eventually(closed)
    assert session_a["closeReason"] == "empty"


async def test_the_session_closes_after_the_last_member_and_a_new_one_opens(client, server):
    """After the last exit and the grace the session closes; a later enter gets a new UUID."""
    first = (await enter(client, server, "alice", 4))["roomUuid"]
    await enter(client, server, "bob", 4)
    await client.post("/v1/rooms/4/exit", headers=server.headers("alice"))
    still = await session_of(client, first, server.headers("bob"))
    assert still["closedAt"] is None  # bob is still there
    await client.post("/v1/rooms/4/exit", headers=server.headers("bob"))

    async def closed() -> dict[str, Any] | None:
        body = await session_of(client, first, server.headers("bob"))
        return body if body["closedAt"] is not None else None

    session = await eventually(closed)
    assert session["closeReason"] == "empty"
    assert kinds(session)[-1] == ("closed", None, "empty")
    assert [(m["userId"], m["leaveReason"]) for m in session["members"]] == [
        ("alice", "exit"),
        ("bob", "exit"),
    ]
    second = (await enter(client, server, "alice", 4))["roomUuid"]
    assert second != first


async def test_re_entering_within_the_grace_keeps_the_session(server_factory: ServerFactory):
    """An enter during the close grace keeps the session's UUID."""
    server = server_factory(close_grace=30.0)
    async with httpx.AsyncClient(base_url=server.url) as client:
        first = (await enter(client, server, "alice", 8))["roomUuid"]
        await client.post("/v1/rooms/8/exit", headers=server.headers("alice"))
        again = (await enter(client, server, "alice", 8))["roomUuid"]
        assert again == first


async def test_a_zero_grace_closes_at_once(server_factory: ServerFactory):
    """With close_grace 0 the last exit closes the session in the same step."""
    server = server_factory(close_grace=0.0)
    async with httpx.AsyncClient(base_url=server.url) as client:
        first = (await enter(client, server, "alice", 8))["roomUuid"]
        await client.post("/v1/rooms/8/exit", headers=server.headers("alice"))
        session = await session_of(client, first, server.headers("alice"))
        assert session["closeReason"] == "empty"


async def test_an_admin_sees_closes_and_removes(client, server):
    """The admin lists open rooms, removes a member (14004 after) and closes a room."""
    admin = server.admin_headers()
    room = (await enter(client, server, "alice", 21))["roomUuid"]
    await enter(client, server, "bob", 21)
    await enter(client, server, "carol", 22)
    rooms = (await client.get("/v1/admin/rooms", headers=admin)).json()["rooms"]
    assert [(r["roomId"], [m["userId"] for m in r["members"]]) for r in rooms] == [
        (21, ["alice", "bob"]),
        (22, ["carol"]),
    ]
    assert rooms[0]["roomUuid"] == room and rooms[0]["sdkAppId"] == server.app_id

    removed = await client.post("/v1/admin/rooms/21/users/bob/remove", headers=admin)
    assert removed.json() == {"roomUuid": room}
    response = await client.post("/v1/rooms/21/heartbeat", headers=server.headers("bob"))
    assert "removed" in expect_error(response, ServerCode.USER_EXITED)
    again = await client.post("/v1/admin/rooms/21/users/bob/remove", headers=admin)
    expect_error(again, ServerCode.USER_EXITED)

    closed = await client.post("/v1/admin/rooms/21/close", headers=admin)
    assert closed.json() == {"roomUuid": room}
    session = await session_of(client, room, admin)
    assert session["closeReason"] == "admin"
    assert [(m["userId"], m["leaveReason"]) for m in session["members"]] == [
        ("alice", "closed"),
        ("bob", "removed"),
    ]
    assert ("removed", "bob", "removed") in kinds(session)
    assert kinds(session)[-1] == ("closed", None, "admin")
    rooms = (await client.get("/v1/admin/rooms", headers=admin)).json()["rooms"]
    assert [r["roomId"] for r in rooms] == [22]


async def test_a_session_is_visible_to_its_members_and_the_admin_only(
    server_factory: ServerFactory,
):
    """Former members and the admin may read a session; others get 10005, other apps 14007."""
    server = server_factory()
    async with httpx.AsyncClient(base_url=server.url) as client:
        room = (await enter(client, server, "alice", 3))["roomUuid"]
        await client.post("/v1/rooms/3/exit", headers=server.headers("alice"))
        assert (
            await client.get(f"/v1/sessions/{room}", headers=server.headers("alice"))
        ).is_success
        assert (await client.get(f"/v1/sessions/{room}", headers=server.admin_headers())).is_success
        recordings = await client.get(
            f"/v1/sessions/{room}/recordings", headers=server.headers("alice")
        )
        assert recordings.json() == {"roomUuid": room, "recording": False, "recordings": []}
        stranger = await client.get(f"/v1/sessions/{room}", headers=server.headers("eve"))
        expect_error(stranger, ServerCode.UNAUTHORISED)
        assert uuid.UUID(room)


async def test_other_apps_cannot_see_a_session(server_factory: ServerFactory):
    """A session of one app is unknown (14007) to the admin of another app."""
    from tavkit.server import AppConfig

    other = AppConfig(1400000009, "9" * 64)
    server = server_factory(apps=(AppConfig(1400000001, "1" * 64), other))
    async with httpx.AsyncClient(base_url=server.url) as client:
        room = (await enter(client, server, "alice", 3))["roomUuid"]
        headers = server.admin_headers(app=other)
        response = await client.get(f"/v1/sessions/{room}", headers=headers)
        expect_error(response, ServerCode.SESSION_NOT_FOUND)
        rooms = await client.get("/v1/admin/rooms", headers=headers)
        assert rooms.json() == {"rooms": []}
