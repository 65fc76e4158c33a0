"""Signature attacks on enter: each forged, stolen or stale credential gets the seed's code."""

from __future__ import annotations

import time
from typing import TYPE_CHECKING

import httpx

from tavkit.auth import Privilege, gen_private_map_key, gen_user_sig
from tavkit.errors import AvkitCode, ServerCode
from tavkit.server import AppConfig

from ._util import expect_error

if TYPE_CHECKING:
    from conftest import ServerFactory

OTHER_APP = AppConfig(1400000002, "0123456789abcdef" * 4)
PMK_APP = AppConfig(1400000003, "fedcba9876543210" * 4, require_private_map_key=True)


async def test_forged_or_stolen_usersigs_are_refused_with_70346(server_factory: ServerFactory):
    """Expired, wrong-key, other user's and other app's userSigs are all avkit 70346."""
    server = server_factory(apps=(AppConfig(1400000001, "a1" * 32), OTHER_APP))
    past = int(time.time()) - 3600
    forgeries = {
        "expired": gen_user_sig(server.app_id, server.key, "alice", 60, now=past),
        "wrong key": gen_user_sig(server.app_id, "b2" * 32, "alice"),
        "other user": server.sig("mallory"),
        "other app": gen_user_sig(OTHER_APP.sdk_app_id, OTHER_APP.key, "alice"),
        "garbage": "eJyrVkrNK8rMT1WyUlAqS8xRqgUAJ8MFGQ__",
        "a privateMapKey": server.pmk("alice", 1),
    }
    async with httpx.AsyncClient(base_url=server.url) as client:
        for name, sig in forgeries.items():
            response = await client.post(
                "/v1/rooms/1/enter", headers=server.headers("alice", sig=sig)
            )
            assert expect_error(response, AvkitCode.USER_SIG_INVALID), name
        # The other app's own signature works in its own app.
        own = server.headers("alice", sig=forgeries["other app"], app_id=OTHER_APP.sdk_app_id)
        assert (await client.post("/v1/rooms/1/enter", headers=own)).status_code == 200
        # Nothing was entered in the first app by the refused attempts.
        rooms = await client.get("/v1/admin/rooms", headers=server.admin_headers())
        assert rooms.json() == {"rooms": []}


async def test_bad_private_map_keys_get_80_to_87(server_factory: ServerFactory):
    """A privateMapKey for another room, user or app, stale, broken or missing is refused."""
    server = server_factory(apps=(AppConfig(1400000001, "a1" * 32), PMK_APP))
    app, key = PMK_APP.sdk_app_id, PMK_APP.key
    past = int(time.time()) - 3600

    def pmk(user: str = "alice", room: int = 1, **kwargs: int) -> str:
        return gen_private_map_key(app, key, user, room_id=room, **kwargs)

    cases = [
        (None, AvkitCode.PRIVATE_MAP_KEY_MISSING),
        ("garbage-not-base64!", AvkitCode.PARAMETER_CHECK_FAILED),
        (pmk(expire=60, now=past), AvkitCode.PRIVATE_MAP_KEY_EXPIRED),
        (pmk(room=2), AvkitCode.PRIVATE_MAP_KEY_WRONG),
        (pmk(user="mallory"), AvkitCode.PRIVATE_MAP_KEY_WRONG),
        (pmk(privilege=int(Privilege.ALL & ~Privilege.ENTER)), AvkitCode.PRIVATE_MAP_KEY_WRONG),
        (
            gen_private_map_key(app, "b2" * 32, "alice", room_id=1),
            AvkitCode.PRIVATE_MAP_KEY_WRONG,
        ),
        (gen_user_sig(app, key, "alice"), AvkitCode.PRIVATE_MAP_KEY_WRONG),
    ]
    async with httpx.AsyncClient(base_url=server.url) as client:
        sig = gen_user_sig(app, key, "alice")
        for token, code in cases:
            headers = server.headers("alice", sig=sig, pmk=token, app_id=app)
            response = await client.post("/v1/rooms/1/enter", headers=headers)
            expect_error(response, code)
        viewer = server.headers(
            "alice", sig=sig, pmk=pmk(privilege=int(Privilege.VIEWER)), app_id=app
        )
        # Without the create bit a viewer cannot open the room (and opens no session) ...
        expect_error(
            await client.post("/v1/rooms/1/enter", headers=viewer),
            AvkitCode.PRIVATE_MAP_KEY_WRONG,
        )
        host = server.headers(
            "bob", sig=gen_user_sig(app, key, "bob"), pmk=pmk(user="bob"), app_id=app
        )
        assert (await client.post("/v1/rooms/1/enter", headers=host)).status_code == 200
        # ... but enters once someone who may create has opened it.
        response = await client.post("/v1/rooms/1/enter", headers=viewer)
        assert response.status_code == 200
        assert response.json()["privileges"] == int(Privilege.VIEWER) == 42


async def test_a_private_map_key_is_checked_whenever_one_is_sent(server_factory: ServerFactory):
    """An app that does not require a privateMapKey still refuses a bad one that is sent."""
    server = server_factory()
    async with httpx.AsyncClient(base_url=server.url) as client:
        wrong_room = server.headers("alice", pmk=server.pmk("alice", 99))
        response = await client.post("/v1/rooms/1/enter", headers=wrong_room)
        assert "room" in expect_error(response, AvkitCode.PRIVATE_MAP_KEY_WRONG)
        without = await client.post("/v1/rooms/1/enter", headers=server.headers("alice"))
        assert without.json()["privileges"] == 255


async def test_admin_calls_need_the_admin_usersig(server_factory: ServerFactory):
    """Admin routes refuse ordinary users and forged admin signatures with 10005."""
    server = server_factory(admin_user="boss")
    async with httpx.AsyncClient(base_url=server.url) as client:
        for headers in (
            server.headers("alice"),
            server.headers("administrator"),
            server.headers("boss", sig=server.sig("alice")),
        ):
            for method, path in (
                ("GET", "/v1/admin/rooms"),
                ("POST", "/v1/admin/rooms/1/close"),
                ("POST", "/v1/admin/rooms/1/users/alice/remove"),
            ):
                response = await client.request(method, path, headers=headers)
                expect_error(response, ServerCode.UNAUTHORISED)
        response = await client.get("/v1/admin/rooms", headers=server.admin_headers())
        assert response.status_code == 200
