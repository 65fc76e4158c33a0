"""Webhooks from the journal to a real HTTP receiver: ordered, at least once, signed, replayable."""

from __future__ import annotations

import asyncio
import json
import logging
import socket
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

import httpx
import pytest
from conftest import APP_ID, random_key

from tavkit.auth import gen_user_sig
from tavkit.errors import ServerCode
from tavkit.server.journal import parse_entry
from tavkit.server.webhooks import retry_delay
from tavkit.webhooks import WebhookSignatureError, verify

from ._util import eventually, expect_error
from ._webhooks import SECRET, Receiver, start_server
from .test_cli import tavkit, wait_for_url
from .test_signaling import member

if TYPE_CHECKING:
    from conftest import RunningServer, ServerFactory


async def delivering(factory: ServerFactory, receiver: Receiver, **settings: Any) -> RunningServer:
    """The receiver up, a server sending to it, and two rooms' events made."""
    await receiver.start()
    server = await start_server(factory, receiver, **settings)
    await make_events(server)
    return server


async def make_events(server: RunningServer, rooms: range = range(1, 3)) -> None:
    """Each room: a and b enter, b and a leave (then the sweeper closes it)."""
    async with httpx.AsyncClient(base_url=server.url, timeout=30) as http:
        for room in rooms:
            for user, action in (("a", "enter"), ("b", "enter"), ("b", "exit"), ("a", "exit")):
                headers = server.headers(f"{user}{room}")
                response = await http.post(f"/v1/rooms/{room}/{action}", headers=headers)
                assert response.status_code == 200, response.text


async def state(server: RunningServer) -> dict[str, Any]:
    """``GET /v1/admin/webhooks``."""
    async with httpx.AsyncClient(base_url=server.url, timeout=30) as http:
        response = await http.get("/v1/admin/webhooks", headers=server.admin_headers())
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    return body


async def all_delivered(server: RunningServer, receiver: Receiver, expected: int) -> list[dict]:
    """Wait until the server has ``expected`` entries, all delivered; the accepted bodies."""

    async def done() -> list[dict] | None:
        now = await state(server)
        if now["lastEventId"] == expected and now["position"] == expected:
            return receiver.accepted()
        return None

    return await eventually(done, within=30)


def check_order(bodies: list[dict], expected: int) -> None:
    """Ids 1..expected once each, in order; each session's sessionSeq 1, 2, 3..."""
    assert [body["id"] for body in bodies] == list(range(1, expected + 1))
    by_session: dict[str, list[int]] = {}
    for body in bodies:
        parse_entry(body)  # each body is a well-formed journal entry
        by_session.setdefault(body["roomUuid"], []).append(body["sessionSeq"])
    for seqs in by_session.values():
        assert seqs == list(range(1, len(seqs) + 1))


# 2 rooms x (opened, 2 joined, 2 left, closed) once the sweeper has closed them.
EVENTS = 12


async def test_every_event_arrives_in_order_once_and_signed_despite_failures(
    server_factory: ServerFactory, receiver: Receiver
):
    """The first three POSTs get 500; still every event arrives once, in order, signed."""
    receiver.answer = lambda _id, _before: 500 if len(receiver.deliveries) < 3 else 200
    server = await delivering(server_factory, receiver)
    bodies = await all_delivered(server, receiver, EVENTS)
    check_order(bodies, EVENTS)
    app = server.app_id
    assert [d.event_id for d in receiver.deliveries[:4]] == [f"{app}-1"] * 4  # retried, not skipped
    assert [d.status for d in receiver.deliveries[:4]] == [500, 500, 500, 200]
    assert {body["sdkAppId"] for body in bodies} == {app}
    for delivery in receiver.deliveries:
        assert delivery.event_id == f"{app}-{json.loads(delivery.body)['id']}"
        verify(delivery.body, delivery.signature, SECRET)
        with pytest.raises(WebhookSignatureError):
            verify(delivery.body + b" ", delivery.signature, SECRET)
        with pytest.raises(WebhookSignatureError):
            verify(delivery.body, delivery.signature, SECRET + "x")
    shown = await state(server)
    assert SECRET not in json.dumps(shown)
    assert shown | {"nextAttemptAt": None} == {
        "sdkAppId": app,
        "url": receiver.url,
        "messages": False,
        "position": EVENTS,
        "lastEventId": EVENTS,
        "pending": 0,
        "dead": 0,
        "attempts": 0,
        "nextAttemptAt": None,
        "lastError": None,
    }


async def test_a_receiver_that_is_down_gets_everything_when_it_comes_back(
    sqlite_server_factory: ServerFactory, receiver: Receiver, caplog: pytest.LogCaptureFixture
):
    """Refused connections are retried until the receiver listens; nothing is lost, and
    the failures' log lines name the host, never the secret or the URL's path."""
    caplog.set_level(logging.INFO, logger="tavkit.server.webhooks")
    server = await start_server(sqlite_server_factory, receiver)
    await make_events(server)

    async def failing() -> dict | None:
        now = await state(server)
        return now if now["attempts"] >= 2 and now["lastError"] else None

    down = await failing_state(failing)
    assert down["position"] == 0 and "Connect" in down["lastError"]
    await receiver.start()
    check_order(await all_delivered(server, receiver, EVENTS), EVENTS)
    logged = [r.getMessage() for r in caplog.records if r.name == "tavkit.server.webhooks"]
    assert any("failed" in line and "127.0.0.1" in line for line in logged), logged
    assert not [line for line in logged if SECRET in line or "/hooks/tavkit" in line]


async def failing_state(probe: Callable[[], Any]) -> dict:
    """Wait until the endpoint has failed a few times."""
    found: dict = await eventually(probe, within=30)
    return found


async def test_events_unsent_at_shutdown_are_delivered_after_restart(
    server_factory: ServerFactory, receiver: Receiver
):
    """A server stopped with its receiver down sends everything once restarted."""
    server = await start_server(server_factory, receiver)
    await make_events(server)
    await eventually(lambda: _closed_all(server), within=30)
    await asyncio.to_thread(server.stop)
    await receiver.start()
    assert receiver.deliveries == []
    await asyncio.to_thread(server.start)
    check_order(await all_delivered(server, receiver, EVENTS), EVENTS)


async def test_events_unsent_when_the_server_is_killed_are_delivered_after_restart(
    tmp_path: Path, receiver: Receiver
):
    """``tavkit serve`` is killed (-9) with its receiver down and a call's events unsent:
    restarted, it delivers every one of them, in order, once (after the dead process's
    lease on the endpoint lapses: three times the 2 s delivery timeout here)."""
    key, admin_key = random_key(), random_key()
    env = {
        "TAVKIT_WEBHOOK_URL": receiver.url,
        "TAVKIT_WEBHOOK_SECRET": SECRET,
        "TAVKIT_ADMIN_KEY": admin_key,
        "TAVKIT_WEBHOOK_RETRY_BASE": "0.05",
        "TAVKIT_WEBHOOK_RETRY_CAP": "0.2",
        "TAVKIT_WEBHOOK_POLL_INTERVAL": "0.05",
        "TAVKIT_WEBHOOK_TIMEOUT": "2",
    }
    serve = [
        "serve", "--port", str(_free_port()), "--data-dir", str(tmp_path / "data"),
        "--app", f"{APP_ID}:{key}", "--drain-timeout", "0", "--no-rate-limits",
    ]  # fmt: skip

    def headers(user: str, signing_key: str = key) -> dict[str, str]:
        sig = gen_user_sig(APP_ID, signing_key, user, 86400)
        return {"X-TAvKit-SdkAppId": str(APP_ID), "X-TAvKit-UserId": user, "X-TAvKit-UserSig": sig}

    admin = headers("administrator", admin_key)
    process = tavkit(*serve, env=env)
    try:
        url = wait_for_url(process)
        async with httpx.AsyncClient(base_url=url, timeout=30) as http:
            body = {"callees": ["bob"], "media": "audio"}
            call = (await http.post("/v1/calls", headers=headers("alice"), json=body)).json()
            declined = await http.post(
                f"/v1/calls/{call['call']['callId']}/decline", headers=headers("bob")
            )
            assert declined.status_code == 200, declined.text

            async def tried() -> dict[str, Any] | None:
                now = (await http.get("/v1/admin/webhooks", headers=admin)).json()
                return now if now["lastEventId"] >= 3 and now["attempts"] >= 1 else None

            before = await eventually(tried, within=30)
            assert before["position"] == 0 and receiver.deliveries == []
            process.kill()
            process.wait(30)
            await receiver.start()
            process = tavkit(*serve, env=env)
            assert wait_for_url(process) == url

            async def delivered() -> int | None:
                now = (await http.get("/v1/admin/webhooks", headers=admin)).json()
                last: int = now["lastEventId"]
                done = now["position"] == last >= before["lastEventId"]
                return last if done else None

            last = await eventually(delivered, within=30)
    finally:
        process.kill()
        process.wait(30)
    bodies = receiver.accepted()
    check_order(bodies, last)
    calls = [b["type"] for b in bodies if b["type"].startswith("call.")]
    assert calls == ["call.ringing", "call.declined"]
    assert all(verify(d.body, d.signature, SECRET) is None for d in receiver.deliveries)


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


async def _closed_all(server: RunningServer) -> bool:
    return (await state(server))["lastEventId"] == EVENTS


async def test_replay_redelivers_exactly_the_requested_range(
    server_factory: ServerFactory, receiver: Receiver
):
    """fromEventId 5 sends 5..n again, in order; since 0 sends all; the future sends nothing."""
    server = await delivering(server_factory, receiver)
    await all_delivered(server, receiver, EVENTS)
    first_round = len(receiver.deliveries)
    assert first_round == EVENTS
    async with httpx.AsyncClient(base_url=server.url, timeout=30) as http:
        replayed = await http.post(
            "/v1/admin/webhooks/replay", json={"fromEventId": 5}, headers=server.admin_headers()
        )
        assert replayed.json() == {"fromEventId": 5, "count": EVENTS - 4}
        await all_delivered(server, receiver, EVENTS)
        again = [json.loads(d.body)["id"] for d in receiver.deliveries[first_round:]]
        assert again == list(range(5, EVENTS + 1))
        for delivery in receiver.deliveries[first_round:]:
            verify(delivery.body, delivery.signature, SECRET)
        nothing = await http.post(
            "/v1/admin/webhooks/replay", json={"since": 4e9}, headers=server.admin_headers()
        )
        assert nothing.json() == {"fromEventId": EVENTS + 1, "count": 0}
        beyond = await http.post(
            "/v1/admin/webhooks/replay", json={"fromEventId": 99}, headers=server.admin_headers()
        )
        assert beyond.json() == {"fromEventId": EVENTS + 1, "count": 0}  # nothing is skipped
        everything = await http.post(
            "/v1/admin/webhooks/replay", json={"since": 0}, headers=server.admin_headers()
        )
        assert everything.json() == {"fromEventId": 1, "count": EVENTS}
        both = await http.post(
            "/v1/admin/webhooks/replay",
            json={"since": 0, "fromEventId": 1},
            headers=server.admin_headers(),
        )
        expect_error(both, ServerCode.INVALID_PARAMETER)
    await all_delivered(server, receiver, EVENTS)
    third = [json.loads(d.body)["id"] for d in receiver.deliveries[first_round + EVENTS - 4 :]]
    assert third == list(range(1, EVENTS + 1))


async def test_an_event_failing_past_the_give_up_time_is_dead_and_the_rest_go_on(
    sqlite_server_factory: ServerFactory, receiver: Receiver
):
    """Event 2 always gets 500: it becomes a dead letter with its error; 3..n still arrive;
    the admin (and no one else) lists it with its type, session, tries and error."""
    receiver.answer = lambda event_id, _before: 500 if event_id.endswith("-2") else 200
    server = await delivering(sqlite_server_factory, receiver, webhook_give_up=0.3)
    bodies = await all_delivered(server, receiver, EVENTS)
    assert [body["id"] for body in bodies] == [1, *range(3, EVENTS + 1)]
    shown = await state(server)
    assert (shown["dead"], shown["pending"], shown["lastError"]) == (1, 0, None)
    tries = [d.status for d in receiver.deliveries if d.event_id.endswith("-2")]
    assert len(tries) >= 2 and set(tries) == {500}
    async with httpx.AsyncClient(base_url=server.url, timeout=30) as http:
        listed = await http.get("/v1/admin/webhooks/dead", headers=server.admin_headers())
        assert listed.status_code == 200, listed.text
        (letter,) = listed.json()["deadLetters"]
        sent = next(json.loads(d.body) for d in receiver.deliveries if d.event_id.endswith("-2"))
        assert (letter["eventId"], letter["type"]) == (2, sent["type"])
        assert letter["roomUuid"] == sent["roomUuid"]
        assert letter["attempts"] == len(tries) and "500" in letter["lastError"]
        stranger = await http.get("/v1/admin/webhooks/dead", headers=server.headers("alice"))
        assert stranger.status_code == 401, stranger.text
        for limit in ("0", "501", "x"):
            bad = await http.get(
                "/v1/admin/webhooks/dead", params={"limit": limit}, headers=server.admin_headers()
            )
            expect_error(bad, ServerCode.INVALID_PARAMETER)


async def test_an_admin_sets_the_endpoint_at_run_time(
    sqlite_server_factory: ServerFactory, receiver: Receiver
):
    """PUT configures the app's endpoint (from its newest event on); GET never shows the secret."""
    await receiver.start()
    server = await start_server(sqlite_server_factory)
    assert (await state(server))["url"] is None
    async with httpx.AsyncClient(base_url=server.url, timeout=30) as http:
        before = await http.post("/v1/rooms/9/enter", headers=server.headers("early"))
        assert before.status_code == 200
        body = {"url": receiver.url, "secret": SECRET, "messages": True}
        user = await http.put("/v1/admin/webhooks", json=body, headers=server.headers("eve"))
        assert user.status_code == 401
        bad = await http.put(
            "/v1/admin/webhooks",
            json={"url": "ftp://x", "secret": SECRET},
            headers=server.admin_headers(),
        )
        assert SECRET not in expect_error(bad, ServerCode.INVALID_PARAMETER)
        short = await http.put(
            "/v1/admin/webhooks",
            json={"url": receiver.url, "secret": "short"},
            headers=server.admin_headers(),
        )
        expect_error(short, ServerCode.INVALID_PARAMETER)
        put = await http.put("/v1/admin/webhooks", json=body, headers=server.admin_headers())
        assert put.status_code == 200, put.text
        assert SECRET not in put.text
        assert (put.json()["position"], put.json()["messages"]) == (2, True)
        left = await http.post("/v1/rooms/9/exit", headers=server.headers("early"))
        assert left.status_code == 200

    async def closed() -> list[dict] | None:
        found = receiver.accepted()
        return found if len(found) == 2 else None

    bodies = await eventually(closed, within=30)
    assert [(b["id"], b["type"]) for b in bodies] == [(3, "member.left"), (4, "room.closed")]
    for delivery in receiver.deliveries:
        verify(delivery.body, delivery.signature, SECRET)


async def test_two_replicas_deliver_each_event_once(
    server_factory: ServerFactory, receiver: Receiver
):
    """Two servers on one database: the lease lets one deliver, so no id arrives twice."""
    await receiver.start()
    first = await start_server(server_factory, receiver, replica_name="one")
    second = await start_server(
        server_factory,
        receiver,
        apps=first.settings.apps,
        admin_key=first.settings.admin_key,
        replica_name="two",
    )
    await make_events(first, rooms=range(1, 2))
    await make_events(second, rooms=range(2, 4))
    await all_delivered(first, receiver, 18)
    ids = [json.loads(d.body)["id"] for d in receiver.deliveries]
    assert ids == list(range(1, 19))


async def test_a_receiver_that_answers_too_slowly_gets_the_event_again(
    sqlite_server_factory: ServerFactory, receiver: Receiver
):
    """An answer later than webhook_timeout is a failure: the same event is sent again."""
    receiver.stall = lambda event_id, before: 5.0 if before == 0 and event_id.endswith("-3") else 0
    server = await delivering(sqlite_server_factory, receiver, webhook_timeout=1.0)
    check_order(await all_delivered(server, receiver, EVENTS), EVENTS)
    threes = [d for d in receiver.deliveries if d.event_id.endswith("-3")]
    assert len(threes) >= 2  # the receiver saw 3 again; its dedup keeps one
    assert len({d.body for d in threes}) == 1  # the same event, not a new one


async def test_messages_are_sent_once_the_endpoint_asks_for_them(
    sqlite_server_factory: ServerFactory, receiver: Receiver
):
    """With messages true an in-call message arrives as message.created, in session order."""
    await receiver.start()
    server = await start_server(sqlite_server_factory)
    async with httpx.AsyncClient(base_url=server.url, timeout=30) as http:
        body = {"url": receiver.url, "secret": SECRET, "messages": True}
        put = await http.put("/v1/admin/webhooks", json=body, headers=server.admin_headers())
        assert put.status_code == 200, put.text
        async with member(http, server, "alice", 5) as (alice, _welcome):
            sent = {"type": "message", "clientMsgId": "m1", "kind": "text", "text": "hello"}
            await alice.send(json.dumps(sent))

            async def arrived() -> list[dict] | None:
                found = receiver.accepted()
                return found if found and found[-1]["type"] == "message.created" else None

            bodies = await eventually(arrived, within=30)
    assert [b["type"] for b in bodies] == ["room.opened", "member.joined", "message.created"]
    message = bodies[-1]["data"]["message"]
    assert (message["from"], message["text"]) == ("alice", "hello")
    assert [b["sessionSeq"] for b in bodies] == [1, 2, 3]


def test_retry_delays_double_up_to_the_cap_with_jitter():
    """1, 2, 4... seconds up to 300, each taken between half and all of it."""
    most = [retry_delay(n, 1.0, 300.0, jitter=lambda: 0.999999) for n in range(1, 12)]
    least = [retry_delay(n, 1.0, 300.0, jitter=lambda: 0.0) for n in range(1, 12)]
    assert [round(d) for d in most] == [1, 2, 4, 8, 16, 32, 64, 128, 256, 300, 300]
    assert least == [d / 2 for d in [1, 2, 4, 8, 16, 32, 64, 128, 256, 300, 300]]
    assert retry_delay(10_000, 1.0, 300.0, jitter=lambda: 0.0) == 150.0  # no overflow
    with pytest.raises(ValueError):
        retry_delay(0, 1.0, 300.0)
