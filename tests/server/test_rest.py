"""REST v1 over a real server: each answer, and each bad input with the seed's code."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from typing import TYPE_CHECKING

import httpx
import pytest

from tavkit.errors import AvkitCode, ServerCode
from tavkit.server.app import web_dir
from tavkit.server.signaling.tokens import load_or_create_secret, verify

from ._util import expect_error

if TYPE_CHECKING:
    from conftest import RunningServer, ServerFactory


async def enter(client: httpx.AsyncClient, server: RunningServer, user: str, room: int) -> dict:
    """Enter ``room`` as ``user``, asserting success."""
    response = await client.post(f"/v1/rooms/{room}/enter", headers=server.headers(user))
    assert response.status_code == 200, response.text
    return response.json()


async def test_enter_returns_the_session_and_how_to_connect(client, server):
    """enter answers the session UUID, heartbeat timing, ICE config and a socket token."""
    body = await enter(client, server, "alice", 1234)
    assert str(uuid.UUID(body["roomUuid"])) == body["roomUuid"]
    assert body["roomId"] == 1234 and body["userId"] == "alice"
    assert body["members"] == []
    opened = body["openedAt"]
    assert opened > 1_600_000_000  # epoch seconds, not a monotonic clock
    again = await enter(client, server, "bob", 1234)
    assert again["openedAt"] == opened  # the session's, the same for every member
    assert body["heartbeatInterval"] == server.settings.heartbeat_interval
    assert body["heartbeatTimeout"] == server.settings.heartbeat_timeout
    assert body["iceServers"] == [] and body["iceTransportPolicy"] == "all"
    assert body["privileges"] == 255
    assert body["socketUrl"] == server.ws_url
    assert body["socketTokenExpiresIn"] == server.settings.socket_token_ttl
    claims = verify(load_or_create_secret(server.settings.data_dir), body["socketToken"])
    assert (claims.sdk_app_id, str(claims.room_uuid), claims.user_id) == (
        server.app_id,
        body["roomUuid"],
        "alice",
    )


async def test_members_see_each_other(client, server):
    """The second member is told about the first; users lists everyone, caller included."""
    first = await enter(client, server, "alice", 7)
    second = await enter(client, server, "bob", 7)
    assert second["roomUuid"] == first["roomUuid"]
    assert [m["userId"] for m in second["members"]] == ["alice"]
    assert set(second["members"][0]) == {"userId", "joinedAt", "muted", "camera", "publish"}
    response = await client.get("/v1/rooms/7/users", headers=server.headers("alice"))
    assert response.status_code == 200
    assert response.json()["roomUuid"] == first["roomUuid"]
    assert [m["userId"] for m in response.json()["members"]] == ["alice", "bob"]


async def test_heartbeat_and_exit_name_the_session(client, server):
    """heartbeat and exit answer the session's UUID; after exit the user is gone (14004)."""
    room_uuid = (await enter(client, server, "alice", 9))["roomUuid"]
    beat = await client.post("/v1/rooms/9/heartbeat", headers=server.headers("alice"))
    assert beat.json() == {
        "roomUuid": room_uuid,
        "heartbeatInterval": server.settings.heartbeat_interval,
    }
    left = await client.post("/v1/rooms/9/exit", headers=server.headers("alice"))
    assert left.json() == {"roomUuid": room_uuid}
    for call in ("heartbeat", "exit"):
        response = await client.post(f"/v1/rooms/9/{call}", headers=server.headers("alice"))
        assert "left room 9" in expect_error(response, ServerCode.USER_EXITED)
    response = await client.get("/v1/rooms/9/users", headers=server.headers("alice"))
    expect_error(response, ServerCode.USER_EXITED)


async def test_calls_for_another_room_are_14002(client, server):
    """Heartbeat, exit or users for a room the caller is not in answer 14002."""
    await enter(client, server, "alice", 1)
    for method, call in (("POST", "heartbeat"), ("POST", "exit"), ("GET", "users")):
        response = await client.request(
            method, f"/v1/rooms/2/{call}", headers=server.headers("alice")
        )
        assert "in room 1, not room 2" in expect_error(response, ServerCode.ROOM_MISMATCH)
    response = await client.post("/v1/rooms/3/heartbeat", headers=server.headers("carol"))
    expect_error(response, ServerCode.ROOM_MISMATCH)


async def test_calls_into_a_closed_room_are_14003(client, server):
    """After an admin closed the room, its former members get 14003."""
    await enter(client, server, "alice", 5)
    closed = await client.post("/v1/admin/rooms/5/close", headers=server.admin_headers())
    assert closed.status_code == 200
    for call in ("heartbeat", "exit"):
        response = await client.post(f"/v1/rooms/5/{call}", headers=server.headers("alice"))
        assert "closed" in expect_error(response, ServerCode.ROOM_CLOSED)
    again = await client.post("/v1/admin/rooms/5/close", headers=server.admin_headers())
    expect_error(again, ServerCode.ROOM_CLOSED)


async def test_a_full_room_is_14000(server_factory: ServerFactory):
    """Entering a room at max_members is refused with 14000 saying the room is full."""
    server = server_factory(max_members=2)
    async with httpx.AsyncClient(base_url=server.url) as client:
        await enter(client, server, "alice", 3)
        await enter(client, server, "bob", 3)
        response = await client.post("/v1/rooms/3/enter", headers=server.headers("carol"))
        assert "room 3 is full (2 members)" in expect_error(response, ServerCode.ENTER_FAILED)
        # A member re-entering a full room replaces itself and is not refused.
        await enter(client, server, "bob", 3)


async def test_missing_or_malformed_credentials_are_10005(client, server):
    """Each missing or malformed credential header is server 10005 (HTTP 401)."""
    good = server.headers("alice")
    for name in good:
        partial = {k: v for k, v in good.items() if k != name}
        response = await client.post("/v1/rooms/1/enter", headers=partial)
        assert name in expect_error(response, ServerCode.UNAUTHORISED)
    for name, value in (
        ("X-TAvKit-SdkAppId", "abc"),
        ("X-TAvKit-SdkAppId", "0"),
        ("X-TAvKit-SdkAppId", "99999999999"),
        ("X-TAvKit-UserId", "bad user"),
        ("X-TAvKit-UserId", "x" * 65),
        ("X-TAvKit-UserSig", "s" * 20000),
    ):
        response = await client.post("/v1/rooms/1/enter", headers={**good, name: value})
        expect_error(response, ServerCode.UNAUTHORISED)


async def test_a_bad_usersig_is_70346_on_enter_and_10005_elsewhere(client, server):
    """enter reports a bad userSig as avkit 70346; other calls as server 10005."""
    headers = server.headers("alice", sig="not-a-signature")
    expect_error(
        await client.post("/v1/rooms/1/enter", headers=headers), AvkitCode.USER_SIG_INVALID
    )
    for method, path in (
        ("POST", "/v1/rooms/1/heartbeat"),
        ("POST", "/v1/rooms/1/exit"),
        ("GET", "/v1/rooms/1/users"),
        ("GET", f"/v1/sessions/{uuid.uuid4()}"),
        ("GET", "/v1/admin/rooms"),
    ):
        response = await client.request(method, path, headers=headers)
        expect_error(response, ServerCode.UNAUTHORISED)


async def test_an_unknown_app_is_88_on_enter_and_10005_elsewhere(client, server):
    """An sdkAppId the server does not serve is avkit 88 on enter, server 10005 elsewhere."""
    headers = server.headers("alice", app_id=1400009999)
    response = await client.post("/v1/rooms/1/enter", headers=headers)
    assert "1400009999" in expect_error(response, AvkitCode.NO_PACKAGE)
    response = await client.post("/v1/rooms/1/heartbeat", headers=headers)
    expect_error(response, ServerCode.UNAUTHORISED)


async def test_bodies_that_cannot_be_read_are_refused(client, server):
    """Non-JSON (whitespace alone included) is 10003; JSON that is not an object is
    10001; an empty body is fine."""
    headers = server.headers("alice")
    for raw in (b"{not json", b"\xff\xfe", b"{'single': 1}", b"\t", b"  "):
        response = await client.post(
            "/v1/rooms/1/enter",
            content=raw,
            headers={**headers, "Content-Type": "application/json"},
        )
        expect_error(response, ServerCode.JSON_DECODE)
    for value in ([1, 2], "text", 3):
        response = await client.post("/v1/rooms/1/enter", json=value, headers=headers)
        expect_error(response, ServerCode.BAD_REQUEST)
    ok = await client.post("/v1/rooms/1/enter", json={}, headers=headers)
    assert ok.status_code == 200
    ok = await client.post("/v1/rooms/1/heartbeat", content=b"", headers=headers)
    assert ok.status_code == 200
    response = await client.post("/v1/rooms/1/heartbeat", content=b"\t", headers=headers)
    expect_error(response, ServerCode.JSON_DECODE)


async def test_a_body_over_64_kib_is_10001(client, server):
    """Bodies over 64 KiB are refused, whether announced by Content-Length or streamed."""
    headers = server.headers("alice")
    big = b'{"pad": "' + b"x" * (64 * 1024) + b'"}'
    response = await client.post("/v1/rooms/1/enter", content=big, headers=headers)
    assert "body" in expect_error(response, ServerCode.BAD_REQUEST)

    async def chunks() -> AsyncIterator[bytes]:
        for _ in range(80):
            yield b" " * 1024

    response = await client.post("/v1/rooms/1/enter", content=chunks(), headers=headers)
    expect_error(response, ServerCode.BAD_REQUEST)
    # Nothing was entered by the refused requests.
    response = await client.get("/v1/rooms/1/users", headers=headers)
    expect_error(response, ServerCode.ROOM_MISMATCH)


async def test_a_query_parameter_given_twice_is_10004_naming_it(client, server):
    """``?limit=5&limit=6`` is refused (10004, naming ``limit``) rather than read as one of
    the two, whatever the parameter; each parameter once is answered as usual."""
    headers = server.headers("alice")
    response = await client.get("/v1/calls?limit=5&limit=6", headers=headers)
    assert "'limit'" in expect_error(response, ServerCode.INVALID_PARAMETER)
    response = await client.get("/v1/rooms/1/users?x=1&y=2&x=", headers=headers)
    assert "'x'" in expect_error(response, ServerCode.INVALID_PARAMETER)
    ok = await client.get("/v1/calls?limit=5&since=0", headers=headers)
    assert ok.status_code == 200, ok.text


@pytest.mark.parametrize("room", ["abc", "0", "-1", "1.5", "4294967296", "99999999999999999999"])
async def test_bad_room_ids_are_10004(client, server, room):
    """A roomId that is not an integer in 1..2^32-1 is server 10004 naming roomId."""
    response = await client.post(f"/v1/rooms/{room}/enter", headers=server.headers("alice"))
    assert "roomId" in expect_error(response, ServerCode.INVALID_PARAMETER)


async def test_the_largest_room_id_is_accepted(client, server):
    """roomId 4294967295 (the u32 maximum) is a valid room."""
    body = await enter(client, server, "alice", 4294967295)
    assert body["roomId"] == 4294967295


async def test_session_uuids_must_be_canonical_and_known(client, server):
    """A malformed session UUID is 10004, an unknown one 14007."""
    headers = server.headers("alice")
    for bad in ("nope", str(uuid.uuid4()).upper(), uuid.uuid4().hex, "{" + str(uuid.uuid4()) + "}"):
        response = await client.get(f"/v1/sessions/{bad}", headers=headers)
        expect_error(response, ServerCode.INVALID_PARAMETER)
    unknown = str(uuid.uuid4())
    for path in (f"/v1/sessions/{unknown}", f"/v1/sessions/{unknown}/recordings"):
        expect_error(await client.get(path, headers=headers), ServerCode.SESSION_NOT_FOUND)


async def test_bad_user_id_in_the_admin_path_is_10004(client, server):
    """The admin remove path refuses a userId outside the contract's alphabet with 10004."""
    response = await client.post(
        "/v1/admin/rooms/1/users/bad%20user/remove", headers=server.admin_headers()
    )
    assert "userId" in expect_error(response, ServerCode.INVALID_PARAMETER)


async def test_unknown_routes_and_methods_are_10001(client, server):
    """An unknown path is 10001 with HTTP 404; a wrong method 10001 with 405 and Allow."""
    response = await client.get("/v1/nowhere")
    expect_error(response, ServerCode.BAD_REQUEST, status=404)
    response = await client.get("/v1/rooms/1/enter", headers=server.headers("alice"))
    expect_error(response, ServerCode.BAD_REQUEST, status=405)
    assert "POST" in response.headers["allow"]
    response = await client.post("/v1/demo/usersig", json={"userId": "alice"})
    expect_error(response, ServerCode.BAD_REQUEST, status=404)


async def test_a_storage_failure_is_10006_and_leaves_nothing_behind(client, server):
    """When the database fails mid-enter the answer is 10006 and no half session remains."""
    await enter(client, server, "alice", 1)
    server.database.execute("DROP TABLE session_events")
    response = await client.post("/v1/rooms/2/enter", headers=server.headers("bob"))
    expect_error(response, ServerCode.DATABASE)
    rows = server.database.execute("SELECT room_id FROM room_sessions ORDER BY room_id")
    assert rows == [(1,)]
    members = server.database.execute("SELECT user_id FROM members")
    assert members == [("alice",)]


async def test_healthz_reports_the_database(client, server):
    """healthz is 200 with the database up, 503 with a seed error once it is broken."""
    response = await client.get("/healthz")
    assert (response.status_code, response.json()) == (200, {"status": "ok", "database": "ok"})
    server.database.execute(
        "DROP TABLE apps CASCADE" if server.database.kind == "postgres" else "DROP TABLE apps"
    )
    response = await client.get("/healthz")
    assert response.status_code == 503
    body = response.json()
    assert body["status"] == "error"
    assert (body["module"], body["errorCode"]) == ("server", 10006)


async def test_openapi_documents_the_api_and_its_credentials(client, server):
    """/openapi.json lists every route, the credential headers and the error shape."""
    spec = (await client.get("/openapi.json")).json()
    for path in (
        "/v1/rooms/{roomId}/enter",
        "/v1/rooms/{roomId}/heartbeat",
        "/v1/rooms/{roomId}/exit",
        "/v1/rooms/{roomId}/users",
        "/v1/sessions/{uuid}",
        "/v1/sessions/{uuid}/recordings",
        "/v1/admin/rooms",
        "/v1/admin/rooms/{roomId}/close",
        "/v1/admin/rooms/{roomId}/users/{userId}/remove",
        "/healthz",
    ):
        assert path in spec["paths"], path
    schemes = spec["components"]["securitySchemes"]
    assert {s["name"] for s in schemes.values()} == {
        "X-TAvKit-SdkAppId",
        "X-TAvKit-UserId",
        "X-TAvKit-UserSig",
        "X-TAvKit-PrivateMapKey",
    }
    enter_doc = spec["paths"]["/v1/rooms/{roomId}/enter"]["post"]
    assert "401" in enter_doc["responses"] and "409" in enter_doc["responses"]
    assert "ErrorBody" in spec["components"]["schemas"]
    docs = await client.get("/docs")
    assert docs.status_code == 200 and "swagger" in docs.text.lower()


async def test_the_web_component_is_served_under_tavkit(client, server):
    """Files of the packaged web directory are served at /tavkit/; a missing one is 404."""
    shipped = sorted(p for p in web_dir().glob("*.js"))
    assert shipped, "the package ships web files"
    response = await client.get(f"/tavkit/{shipped[0].name}")
    assert response.status_code == 200
    assert response.content == shipped[0].read_bytes()
    missing = await client.get("/tavkit/no-such-file.js")
    expect_error(missing, ServerCode.BAD_REQUEST, status=404)


async def test_an_unexpected_failure_is_10000_without_internals(sqlite_server: RunningServer):
    """A failure nobody anticipated (here: a corrupt row) is 10000, with no trace leaked."""
    server = sqlite_server
    server.database.execute(
        "INSERT INTO room_sessions (id, sdk_app_id, room_id, opened_at) "
        f"VALUES ('not-a-uuid', {server.app_id}, 77, 0)"
    )
    async with httpx.AsyncClient(base_url=server.url) as client:
        response = await client.get("/v1/admin/rooms", headers=server.admin_headers())
        message = expect_error(response, ServerCode.INTERNAL)
        assert "not-a-uuid" not in message and "File" not in message
        # The server keeps serving.
        assert (await client.get("/healthz")).status_code == 200


async def test_a_host_application_can_mount_the_server(sqlite_server_factory: ServerFactory):
    """Mounted under /calls in a host app, the API works and socketUrl includes the mount."""
    from fastapi import FastAPI

    from tavkit.server import create_app

    def host_app(settings):
        calls = create_app(settings)
        host = FastAPI(lifespan=lambda _app: calls.router.lifespan_context(calls))

        @host.get("/")
        async def home() -> dict:
            return {"host": True}

        host.mount("/calls", calls)
        return host

    server = sqlite_server_factory(app_factory=host_app)
    async with httpx.AsyncClient(base_url=server.url) as client:
        assert (await client.get("/")).json() == {"host": True}
        assert (await client.get("/calls/healthz")).json()["status"] == "ok"
        response = await client.post("/calls/v1/rooms/1/enter", headers=server.headers("alice"))
        assert response.json()["socketUrl"] == f"{server.ws_url.removesuffix('/v1/ws')}/calls/v1/ws"


async def test_public_url_and_cors_origins_are_honoured(sqlite_server_factory: ServerFactory):
    """public_url sets socketUrl; a configured origin passes the browser's CORS preflight."""
    server = sqlite_server_factory(
        public_url="https://calls.example.com/base/", cors_origins=("https://app.example.com",)
    )
    async with httpx.AsyncClient(base_url=server.url) as client:
        response = await client.post("/v1/rooms/1/enter", headers=server.headers("alice"))
        assert response.json()["socketUrl"] == "wss://calls.example.com/base/v1/ws"
        preflight = await client.options(
            "/v1/rooms/1/enter",
            headers={
                "Origin": "https://app.example.com",
                "Access-Control-Request-Method": "POST",
                "Access-Control-Request-Headers": "x-tavkit-usersig,content-type",
            },
        )
        assert preflight.status_code == 200
        assert preflight.headers["access-control-allow-origin"] == "https://app.example.com"
        other = await client.options(
            "/v1/rooms/1/enter",
            headers={"Origin": "https://evil.example", "Access-Control-Request-Method": "POST"},
        )
        assert "access-control-allow-origin" not in other.headers
