"""``tavkit rooms`` and ``tavkit sessions`` against a real server, as an operator runs them."""

from __future__ import annotations

import asyncio
import hashlib
import json
from pathlib import Path
from typing import Any

import httpx
from client._util import enter, make_kit, receiving, until
from typer.testing import CliRunner, Result

from tavkit.cli import app

from ._util import eventually


def tavkit(server: Any, *args: str, key: str | None = None) -> Result:
    """``tavkit ARGS`` signed in as ``server``'s admin (``key``: another admin key)."""
    env = {
        "TAVKIT_SERVER": server.url,
        "TAVKIT_SDK_APP_ID": str(server.app_id),
        "TAVKIT_ADMIN_KEY": key or server.settings.admin_key_of(server.settings.apps[0]),
    }
    return CliRunner().invoke(app, list(args), env=env)


async def run(server: Any, *args: str, key: str | None = None) -> Result:
    """:func:`tavkit` off the event loop (the server answers from its own thread)."""
    return await asyncio.to_thread(tavkit, server, *args, key=key)


def as_json(result: Result) -> Any:
    """The command's ``--json`` answer, after checking it succeeded."""
    assert result.exit_code == 0, result.output
    return json.loads(result.stdout)


async def test_rooms_lists_users_removes_and_closes(sqlite_server_factory: Any) -> None:
    """Rooms and members listed as a table and as JSON; a member removed; a room closed;
    a wrong admin key is the server's refusal and exit 1, with no secret printed."""
    server = sqlite_server_factory()
    async with httpx.AsyncClient(base_url=server.url, timeout=30) as http:
        for user in ("alice", "bob"):
            entered = await http.post("/v1/rooms/3301/enter", headers=server.headers(user))
            assert entered.status_code == 200, entered.text

        listed = await run(server, "rooms", "list")
        assert listed.exit_code == 0, listed.output
        assert "roomId" in listed.stdout and "3301" in listed.stdout
        [room] = as_json(await run(server, "rooms", "--json", "list"))["rooms"]
        assert room["roomId"] == 3301

        users = as_json(await run(server, "rooms", "--json", "users", "3301"))
        assert sorted(m["userId"] for m in users["members"]) == ["alice", "bob"]
        table = await run(server, "rooms", "users", "3301")
        assert "alice" in table.stdout and "bob" in table.stdout

        removed = as_json(await run(server, "rooms", "--json", "remove", "3301", "bob"))
        assert removed["roomUuid"] == room["roomUuid"]
        left = (await http.get("/v1/rooms/3301/users", headers=server.headers("alice"))).json()
        assert [m["userId"] for m in left["members"]] == ["alice"]

        closed = as_json(await run(server, "rooms", "--json", "close", "3301"))
        assert closed["roomUuid"] == room["roomUuid"]
        assert as_json(await run(server, "rooms", "--json", "list"))["rooms"] == []

        gone = await run(server, "rooms", "users", "3301")
        assert gone.exit_code == 1 and "room 3301 is not open" in gone.output

        wrong = "0" * 64
        refused = await run(server, "rooms", "list", key=wrong)
        assert refused.exit_code == 1
        assert "refused (HTTP 401)" in refused.output and wrong not in refused.output


async def test_string_rooms_are_named_as_text_or_with_str(sqlite_server_factory: Any) -> None:
    """Text is a string room, digits the numeric room unless --str; tables quote string rooms."""
    server = sqlite_server_factory()
    async with httpx.AsyncClient(base_url=server.url, timeout=30) as http:
        for user, path in (
            ("alice", "str-rooms/77"),
            ("bob", "rooms/77"),
            ("carol", "str-rooms/a%23b"),
        ):
            entered = await http.post(f"/v1/{path}/enter", headers=server.headers(user))
            assert entered.status_code == 200, entered.text

        table = (await run(server, "rooms", "list")).stdout
        assert '"77"' in table and '"a#b"' in table
        rooms = as_json(await run(server, "rooms", "--json", "list"))["rooms"]
        assert sorted(repr(r["roomId"]) for r in rooms) == sorted(["'77'", "77", "'a#b'"])

        text = as_json(await run(server, "rooms", "--json", "users", "--str", "77"))
        assert [m["userId"] for m in text["members"]] == ["alice"]
        number = as_json(await run(server, "rooms", "--json", "users", "77"))
        assert [m["userId"] for m in number["members"]] == ["bob"]

        as_json(await run(server, "rooms", "--json", "close", "a#b"))
        as_json(await run(server, "rooms", "--json", "remove", "--str", "77", "alice"))
        left = as_json(await run(server, "rooms", "--json", "list"))["rooms"]
        # "77" may linger empty for its close grace; only room 77 still has anyone.
        occupied = [
            (r["roomId"], [m["userId"] for m in r["members"]]) for r in left if r["members"]
        ]
        assert occupied == [(77, ["bob"])]
        gone = await run(server, "rooms", "users", "--str", "88")
        assert gone.exit_code == 1 and 'room "88" is not open' in gone.output
        bad = await run(server, "rooms", "close", "no spaces")
        assert bad.exit_code == 2 and "may hold only" in bad.output


async def test_sessions_lists_shows_and_downloads_a_recording(
    sqlite_server_factory: Any, tmp_path: Path
) -> None:
    """A recorded call's session is listed and shown; its files are listed and one is
    downloaded whole, byte for byte what the server stored (its sha256)."""
    server = sqlite_server_factory(recording="auto")
    async with make_kit(server.url) as alice, make_kit(server.url) as bob:
        await enter(alice, server, "alice", 3302)
        await enter(bob, server, "bob", 3302)
        await until(receiving(alice, "bob", video=10, audio=10), "alice decodes bob")
        room_uuid = str(alice.room_uuid)
        await asyncio.sleep(1.0)
        await alice.hangup()
        await bob.hangup()

    async def ready() -> list[dict[str, Any]] | None:
        found = as_json(await run(server, "sessions", "--json", "recordings", room_uuid))
        files = found["recordings"]
        done = len(files) == 2 and all(f["status"] == "complete" for f in files)
        return files if done else None

    files = await eventually(ready, within=40)
    sessions = as_json(await run(server, "sessions", "--json", "list"))["sessions"]
    assert [s["roomUuid"] for s in sessions] == [room_uuid]
    shown = await run(server, "sessions", "show", room_uuid)
    assert shown.exit_code == 0 and f"roomUuid: {room_uuid}" in shown.stdout
    listed = await run(server, "sessions", "recordings", room_uuid)
    assert all(f["id"] in listed.stdout for f in files)

    wanted = files[0]
    target = tmp_path / "alice.mkv"
    got = as_json(
        await run(
            server, "sessions", "--json", "download", room_uuid, wanted["id"], "-o", str(target)
        )
    )
    assert got == {"path": str(target), "bytes": wanted["size"]}
    assert hashlib.sha256(target.read_bytes()).hexdigest() == wanted["sha256"]
    assert not target.with_name("alice.mkv.part").exists()

    missing = await run(server, "sessions", "download", room_uuid, "0" * 32, "-o", str(target))
    assert missing.exit_code == 1 and "refused (HTTP 404)" in missing.output
    assert hashlib.sha256(target.read_bytes()).hexdigest() == wanted["sha256"]  # untouched
