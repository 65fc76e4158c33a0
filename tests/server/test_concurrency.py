"""Hundreds of concurrent enters, exits and re-enters leave membership consistent."""

from __future__ import annotations

import asyncio
import random
from collections import Counter
from typing import TYPE_CHECKING, Any

import httpx

from ._util import eventually

if TYPE_CHECKING:
    from conftest import RunningServer, ServerFactory

USERS = 60
ROOMS = 20


async def run_script(
    client: httpx.AsyncClient, server: RunningServer, user: str, script: list[tuple[str, int]]
) -> int | None:
    """Play one user's actions in order; return the room the user should end in."""
    headers = server.headers(user)
    where: int | None = None
    for action, room in script:
        response = await client.post(f"/v1/rooms/{room}/{action}", headers=headers)
        assert response.status_code == 200, (user, action, room, response.text)
        where = room if action == "enter" else None
    return where


async def test_concurrent_enters_end_consistent(server_factory: ServerFactory):
    """200 concurrent enters into 20 rooms, with exits and moves, end with no lost member."""
    # A long heartbeat timeout: nobody heartbeats here, and a loaded machine is slow.
    server = server_factory(max_members=USERS, close_grace=0.1, heartbeat_timeout=600.0)
    rng = random.Random(20240601)
    scripts: dict[str, list[tuple[str, int]]] = {}
    for n in range(USERS):
        script: list[tuple[str, int]] = []
        for _ in range(rng.choice((3, 3, 4))):
            room = rng.randrange(1, ROOMS + 1)
            script.append(("enter", room))
            if rng.random() < 0.3:
                script.append(("exit", room))
            elif rng.random() < 0.2:
                script.append(("enter", room))  # re-enter: a replacement
        scripts[f"user{n:03d}"] = script
    enters = sum(action == "enter" for s in scripts.values() for action, _ in s)
    assert enters >= 200

    limits = httpx.Limits(max_connections=200)
    async with httpx.AsyncClient(base_url=server.url, timeout=120, limits=limits) as client:
        # Users run concurrently; plus a few users racing themselves into several rooms.
        racers = {f"racer{n}": list(range(1, 6)) for n in range(4)}
        race = [
            client.post(f"/v1/rooms/{room}/enter", headers=server.headers(user))
            for user, rooms in racers.items()
            for room in rooms
        ]
        results = await asyncio.gather(
            *(run_script(client, server, user, s) for user, s in scripts.items()), *race
        )
        expected: dict[int, set[str]] = {}
        for user, room in zip(scripts, results, strict=False):
            if room is not None:
                expected.setdefault(room, set()).add(user)
        for response in results[len(scripts) :]:
            assert response.status_code == 200, response.text

        rooms = (await client.get("/v1/admin/rooms", headers=server.admin_headers())).json()
        seen = Counter(m["userId"] for r in rooms["rooms"] for m in r["members"])
        assert [user for user, count in seen.items() if count > 1] == []  # no duplicate
        occupied = {
            r["roomId"]: {m["userId"] for m in r["members"]} for r in rooms["rooms"] if r["members"]
        }
        scripted = {
            room: {user for user in users if user in scripts} for room, users in occupied.items()
        }
        assert {room: users for room, users in scripted.items() if users} == expected  # none lost
        assert sum(seen[racer] for racer in racers) == len(racers)  # each racer in one room

        # Rooms left empty close after the grace; the occupied ones stay open.
        async def settled() -> dict[str, Any] | None:
            body = (await client.get("/v1/admin/rooms", headers=server.admin_headers())).json()
            return body if all(r["members"] for r in body["rooms"]) else None

        final = await eventually(settled)
        assert {r["roomId"] for r in final["rooms"]} == set(occupied)

    # The database agrees: one open session per room, one live membership per user.
    db = server.database
    assert (
        db.execute(
            "SELECT room_id, COUNT(*) FROM room_sessions WHERE closed_at IS NULL "
            "GROUP BY room_id HAVING COUNT(*) > 1"
        )
        == []
    )
    assert (
        db.execute(
            "SELECT user_id, COUNT(*) FROM members WHERE left_at IS NULL "
            "GROUP BY user_id HAVING COUNT(*) > 1"
        )
        == []
    )
    assert db.execute(
        "SELECT COUNT(*) FROM members m JOIN room_sessions s ON s.id = m.session_id "
        "WHERE m.left_at IS NULL AND s.closed_at IS NOT NULL"
    ) == [(0,)]
