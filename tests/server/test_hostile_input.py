"""Hostile input on a real server: refused at the door, never a 500, never stored poison.

What one member stores (a chat message, ``custom`` data, a client log line) every
member and the admin read back later, so whatever is accepted must serialise again:
lone surrogates, nesting past :data:`~tavkit.protocol.MAX_JSON_DEPTH` and numbers out
of range are refused when they arrive, and the worst input that *is* accepted still
reads back with a 200 from every history endpoint.
"""

from __future__ import annotations

import json
import logging
import time
from typing import TYPE_CHECKING, Any

import httpx
import pytest

from tavkit.errors import ServerCode
from tavkit.protocol import MAX_JSON_DEPTH, MAX_TEXT_CHARS

from ._util import expect_error
from .test_signaling import assert_error, member, until

if TYPE_CHECKING:
    from conftest import RunningServer, ServerFactory
    from websockets.asyncio.client import ClientConnection

Frame = dict[str, Any]

ASTRAL = "\U0001f600"
"""A character outside the BMP: a valid surrogate pair in JSON, four bytes in UTF-8."""


def nested(levels: int, leaf: Any) -> Any:
    """``leaf`` inside ``levels`` alternating objects and arrays (``levels`` deep itself)."""
    value = leaf
    for level in range(levels):
        value = {"k": value} if level % 2 else [value]
    return value


def depth(value: Any) -> int:
    """How deeply ``value`` nests: 0 for a scalar, 1 + the deepest member otherwise."""
    if isinstance(value, dict):
        return 1 + max((depth(v) for v in value.values()), default=0)
    if isinstance(value, list):
        return 1 + max((depth(v) for v in value), default=0)
    return 0


WORST_LEAF: Frame = {
    "astral": ASTRAL * 8,
    "controls": "\x00\x01\x1f\u2028\u2029",
    "nonchars": "\ufeff\ufffe\uffff\U0010ffff",
    "big": 10**300,
    "max": 1.7976931348623157e308,
    "tiny": 5e-324,
    "negzero": -0.0,
    "flags": [True, False, None],
    ASTRAL: "key outside the BMP",
}
"""Every awkward value that is still valid JSON and valid Unicode."""


async def messages_of(http: httpx.AsyncClient, room_uuid: str, headers: dict[str, str]) -> list:
    """The session's stored messages, asserting the history answers 200."""
    response = await http.get(
        f"/v1/sessions/{room_uuid}/messages", params={"limit": 1000}, headers=headers
    )
    assert response.status_code == 200, response.text
    messages: list[Frame] = response.json()["messages"]
    return messages


# --- the socket: chat messages and custom data ----------------------------------------------


POISON_PAYLOADS = [
    # ("kind": payload as raw JSON text, the code it is refused with, a needle of the message)
    ('"text","text":"\\ud800"', 10004, "message.text"),
    ('"text","text":"ok \\udfff ok"', 10004, "message.text"),
    ('"custom","data":{"\\udc00":1}', 10004, "message.data"),
    ('"custom","data":[1e400]', 10004, "message.data[0]"),
    ('"custom","data":' + json.dumps(nested(256, 1)), 10003, "nested more than 32"),
    ('"custom","data":' + json.dumps(nested(MAX_JSON_DEPTH, 1)), 10003, "nested more than 32"),
]


async def refused(ws: ClientConnection, raw: str) -> Frame:
    """Send ``raw`` and return the error frame that answers it."""
    await ws.send(raw)
    got, skipped = await until(ws, "error")
    assert not [f for f in skipped if f["type"] == "message"], skipped
    return got


async def test_poison_messages_are_refused_and_history_still_reads(server: RunningServer):
    """Poison messages are refused at the door; the worst accepted ones read back with 200."""
    async with (
        httpx.AsyncClient(base_url=server.url, timeout=30) as http,
        member(http, server, "alice", 31) as (alice, welcome),
        member(http, server, "bob", 31) as (bob, _),
    ):
        room_uuid = welcome["roomUuid"]
        for i, (payload, code, needle) in enumerate(POISON_PAYLOADS):
            raw = f'{{"type":"message","clientMsgId":"p{i}","id":"p{i}","kind":{payload}}}'
            assert needle in assert_error(await refused(alice, raw), code, ref=f"p{i}")

        worst_text = ASTRAL * (MAX_TEXT_CHARS - 5) + "\x00\u2028\ufeff\uffff\U0010ffff"
        worst_data = nested(MAX_JSON_DEPTH - 3, WORST_LEAF)
        assert depth(worst_data) == MAX_JSON_DEPTH - 1  # the frame itself is the 32nd level
        for fields in (
            {"clientMsgId": "w1", "kind": "text", "text": worst_text},
            {"clientMsgId": "w2", "kind": "custom", "data": worst_data},
        ):
            await alice.send(json.dumps({"type": "message", **fields}))
            got, _ = await until(bob, "message")
            assert got["clientMsgId"] == fields["clientMsgId"]

        for headers in (server.headers("alice"), server.headers("bob"), server.admin_headers()):
            stored = await messages_of(http, room_uuid, headers)
            assert [m["clientMsgId"] for m in stored] == ["w1", "w2"]
            assert stored[0]["text"] == worst_text
            assert stored[1]["data"] == worst_data and depth(stored[1]["data"]) == 31
        session = await http.get(f"/v1/sessions/{room_uuid}", headers=server.admin_headers())
        assert session.status_code == 200, session.text


# --- client logs -------------------------------------------------------------------------------


def log_body(room_uuid: str, **item: Any) -> Frame:
    """A log batch of one line with ``item``'s fields over a valid default."""
    now = time.time()
    line = {"at": now - 1, "level": "info", "event": "probe", **item}
    return {"roomUuid": room_uuid, "sentAt": now, "logs": [line]}


def seed_error(message: str) -> Frame:
    """A log line's ``error`` with a seed code and ``message``."""
    return {"module": "trtc", "errorCode": -1307, "errorMsg": message}


LOG_DATA_DEPTH = MAX_JSON_DEPTH - 3
"""How deep a log line's ``data`` may nest: the body, ``logs`` and the line hold it."""


async def test_poison_logs_are_refused_and_logs_still_read(server: RunningServer):
    """Poison log lines are refused at the door; the worst accepted one reads back with 200."""
    async with httpx.AsyncClient(base_url=server.url, timeout=30) as http:
        entered = await http.post("/v1/rooms/32/enter", headers=server.headers("alice"))
        room_uuid = entered.json()["roomUuid"]
        headers = {**server.headers("alice"), "Content-Type": "application/json"}

        async def post(raw: str) -> httpx.Response:
            return await http.post("/v1/logs", content=raw.encode(), headers=headers)

        deep = json.dumps(log_body(room_uuid, data={"d": nested(300, 1)}))
        assert "nested more than 32" in expect_error(await post(deep), ServerCode.JSON_DECODE)
        over = json.dumps(log_body(room_uuid, data={"d": nested(LOG_DATA_DEPTH, 1)}))
        expect_error(await post(over), ServerCode.JSON_DECODE)
        not_json = json.dumps(log_body(room_uuid, data={"x": float("nan")}))
        assert "NaN" in expect_error(await post(not_json), ServerCode.JSON_DECODE)
        for bad in (
            log_body(room_uuid, data={"k": "\ud800"}),
            log_body(room_uuid, data={"\udfff": 1}),
            log_body(room_uuid, error=seed_error("lost \ud800")),
            log_body(room_uuid, error=seed_error("NUL \x00 inside")),
            log_body(room_uuid, data={"n": float("inf")}),
        ):
            raw = json.dumps(bad).replace("Infinity", "1e400")
            expect_error(await post(raw), ServerCode.INVALID_PARAMETER)

        worst_data = {"d": nested(LOG_DATA_DEPTH - 2, {"s": ASTRAL + "\x00", "n": 10**300})}
        assert depth(worst_data) == LOG_DATA_DEPTH
        worst = log_body(room_uuid, data=worst_data, error=seed_error(ASTRAL * 500))
        accepted = await post(json.dumps(worst))
        assert accepted.status_code == 200, accepted.text

        for reader in (server.headers("alice"), server.admin_headers()):
            logs = await http.get(f"/v1/sessions/{room_uuid}/logs", headers=reader)
            assert logs.status_code == 200, logs.text
            (line,) = logs.json()["logs"]
            assert line["data"] == worst_data and depth(line["data"]) == LOG_DATA_DEPTH
            assert line["error"]["errorMsg"] == ASTRAL * 500
            quality = await http.get(f"/v1/sessions/{room_uuid}/quality", headers=reader)
            assert quality.status_code == 200, quality.text


# --- request bodies, headers, query values ------------------------------------------------------


HOSTILE_BODIES = [
    # (raw body, the code it is refused with)
    (b"[" * 1000, ServerCode.JSON_DECODE),
    (b"[" * 60_000, ServerCode.JSON_DECODE),
    (b'{"a":' * 1000 + b"1" + b"}" * 1000, ServerCode.JSON_DECODE),
    (json.dumps({"k": nested(MAX_JSON_DEPTH, 1)}).encode(), ServerCode.JSON_DECODE),
    (b'{"policy": "\\ud800"}', ServerCode.INVALID_PARAMETER),
    (b'{"\\udbff": "off"}', ServerCode.INVALID_PARAMETER),
    (b'{"policy": NaN}', ServerCode.JSON_DECODE),
    (b'{"policy": 1e400}', ServerCode.INVALID_PARAMETER),
    (b'{"policy": ' + b"9" * 5000 + b"}", ServerCode.JSON_DECODE),
]


@pytest.mark.parametrize(
    ("method", "path", "admin"),
    [
        ("POST", "/v1/rooms/33/enter", False),
        ("POST", "/v1/rooms/33/heartbeat", False),
        ("POST", "/v1/logs", False),
        ("PUT", "/v1/admin/recording", True),
        ("POST", "/v1/admin/rooms/33/close", True),
    ],
)
async def test_hostile_bodies_get_the_seed_error_not_a_500(
    sqlite_server: RunningServer, method: str, path: str, admin: bool
):
    """Deep, surrogate, NaN, 1e400 or huge-integer bodies are 10003/10004, never a 500."""
    server = sqlite_server
    headers = server.admin_headers() if admin else server.headers("alice")
    headers["Content-Type"] = "application/json"
    async with httpx.AsyncClient(base_url=server.url, timeout=30) as http:
        for raw, code in HOSTILE_BODIES:
            response = await http.request(method, path, content=raw, headers=headers)
            try:
                expect_error(response, code)
            except AssertionError as exc:
                exc.add_note(f"body: {raw[:60]!r}")
                raise
        assert (await http.get("/healthz")).status_code == 200


async def test_an_sdkappid_of_thousands_of_digits_is_10005(sqlite_server: RunningServer):
    """An X-TAvKit-SdkAppId (or a sendBeacon ``auth.sdkAppId``) of 5,000 digits is 10005."""
    server = sqlite_server
    huge = "9" * 5000
    async with httpx.AsyncClient(base_url=server.url, timeout=30) as http:
        headers = {**server.headers("alice"), "X-TAvKit-SdkAppId": huge}
        for method, path in (("GET", "/v1/admin/rooms"), ("POST", "/v1/rooms/1/heartbeat")):
            response = await http.request(method, path, headers=headers)
            expect_error(response, ServerCode.UNAUTHORISED)
        auth = {"sdkAppId": huge, "userId": "alice", "userSig": server.sig("alice")}
        body = {"roomUuid": "00000000-0000-4000-8000-000000000000", "logs": [], "auth": auth}
        expect_error(await http.post("/v1/logs", json=body), ServerCode.UNAUTHORISED)


async def test_nan_and_inf_in_numeric_query_values_are_10004(sqlite_server: RunningServer):
    """``before``/``since`` of nan or inf are refused with 10004 before any query runs."""
    server = sqlite_server
    async with httpx.AsyncClient(base_url=server.url, timeout=30) as http:
        entered = await http.post("/v1/rooms/34/enter", headers=server.headers("alice"))
        room_uuid = entered.json()["roomUuid"]
        admin = server.admin_headers()
        for value in ("nan", "NaN", "inf", "-inf", "Infinity", "1e999"):
            for path, name in (
                ("/v1/admin/sessions", "before"),
                (f"/v1/sessions/{room_uuid}/logs", "since"),
                (f"/v1/sessions/{room_uuid}/quality", "since"),
            ):
                response = await http.get(path, params={name: value}, headers=admin)
                assert name in expect_error(response, ServerCode.INVALID_PARAMETER), value


# --- what reaches the server's log ---------------------------------------------------------------


def _with_a_failing_route(settings: Any) -> Any:
    """The real app plus one route that fails unexpectedly, wherever its path points."""
    from tavkit.server import create_app

    app = create_app(settings)

    async def fail(rest: str) -> None:
        raise RuntimeError("an unexpected failure")

    app.add_api_route("/v1/fail/{rest}", fail, methods=["GET"])  # [^/]+: newlines too
    return app


async def test_a_newline_in_the_path_cannot_forge_a_log_line(
    sqlite_server_factory: ServerFactory, caplog: pytest.LogCaptureFixture
):
    """On a 500, the path is quoted in the log: ``%0A`` cannot start a line of its own."""
    server = sqlite_server_factory(app_factory=_with_a_failing_route)
    caplog.set_level(logging.ERROR, logger="tavkit.server.errors")
    forged = "x%0A2030-01-01 00:00:00 CRITICAL tavkit admin login ok%0D%0Ay"
    async with httpx.AsyncClient(base_url=server.url, timeout=30) as http:
        response = await http.get(f"/v1/fail/{forged}")
    expect_error(response, ServerCode.INTERNAL)
    (record,) = [r for r in caplog.records if r.name == "tavkit.server.errors"]
    message = record.getMessage()
    assert "\n" not in message and "\r" not in message
    assert "\\n2030-01-01" in message  # quoted, still readable
