"""Rows poisoned before the input checks still read back: history, logs and sync never 500.

The rows are written straight into the database with SQLAlchemy, past every check,
as an earlier version could have stored them: lone surrogates (as JSON escapes),
``NaN``, nesting hundreds and a hundred thousand deep, text that is not JSON.
"""

from __future__ import annotations

import json
import time
import uuid
from typing import TYPE_CHECKING, Any

import httpx
from sqlalchemy import update

from tavkit.protocol import MAX_JSON_DEPTH, json_problem
from tavkit.server.store.db import Store
from tavkit.server.store.logs_models import ClientLogRow
from tavkit.server.store.models import MessageRow, SessionRow
from tavkit.server.store.readback import TOO_DEEP, UNREADABLE, mend, read_json

from .test_hostile_input import depth, messages_of, nested
from .test_signaling import member, until

if TYPE_CHECKING:
    from conftest import RunningServer

ABYSS = "[" * 100_000 + "]" * 100_000
"""An array nested deeper than Python's decoder can go."""

# (kind, body as stored) -> what the history shows for it
POISON_MESSAGES: list[tuple[str, str, dict[str, Any]]] = [
    ("text", '{"text":"lost \\ud800 here"}', {"text": "lost \ufffd here"}),
    (
        "custom",
        '{"data":{"\\udc00":"\\udfff ok \\ud83d\\ude00"}}',
        {"data": {"\ufffd": "\ufffd ok 😀"}},
    ),
    ("custom", '{"data":[NaN,-Infinity,1.5]}', {"data": [None, None, 1.5]}),
    ("custom", '{"data":' + ABYSS + "}", {"data": TOO_DEEP}),
    ("custom", '{"data":', {"data": UNREADABLE}),
    ("text", '{"text":' + ABYSS + "}", {"text": TOO_DEEP}),
    ("custom", json.dumps({"data": nested(300, 1)}), {}),  # checked on its own below
]
POISON_LOGS: list[tuple[str, dict[str, Any] | None]] = [
    ('{"k":"\\ud800","\\udfff":[1]}', {"k": "\ufffd", "\ufffd": [1]}),
    ('{"n":NaN}', {"n": None}),
    (ABYSS, {"value": TOO_DEEP}),
    ("not json", {"value": UNREADABLE}),
    (json.dumps({"d": nested(300, 1)}), None),  # checked on its own below
]
LOG_DATA_DEPTH = MAX_JSON_DEPTH - 3


def serves(text: str) -> bool:
    """Whether the value ``text`` holds could go out in a JSON answer as it is."""
    try:
        value = json.loads(text)
    except (RecursionError, ValueError):
        return False
    return json_problem(value, "row") is None


# --- the reader on its own ------------------------------------------------------------------


def test_clean_json_reads_back_unchanged():
    """A value stored since the checks is returned exactly as decoded, astral text included."""
    value = {"a": [1, 2.5, None, True], "s": "ok 😀 \x00 \ufffd", "deep": nested(31, "leaf")}
    assert read_json(json.dumps(value)) == value
    assert read_json(json.dumps(value, ensure_ascii=False)) == value


def test_mend_replaces_surrogates_non_finite_numbers_and_what_is_too_deep():
    """Lone surrogates become U+FFFD, NaN and infinities null, and the bound is json_problem's."""
    assert mend({"\ud800k": ["a\udfffb", float("nan"), float("inf")]}) == {
        "\ufffdk": ["a\ufffdb", None, None]
    }
    at_bound = nested(MAX_JSON_DEPTH, 1)
    assert json_problem(at_bound, "v") is None and mend(at_bound) == at_bound
    over = mend(nested(MAX_JSON_DEPTH + 1, 1))
    assert json_problem(over, "v") is None and depth(over) == MAX_JSON_DEPTH
    assert TOO_DEEP in json.dumps(over)
    assert mend([[1]], max_depth=1) == [TOO_DEEP] and mend([1], max_depth=0) == TOO_DEEP
    assert mend([3, [4], {"x": 5}, "six"]) == [3, [4], {"x": 5}, "six"]  # order kept


def test_mend_is_iterative():
    """A value nested past the interpreter's stack is mended, not a RecursionError."""
    value: Any = 1
    for _ in range(100_000):
        value = [value]
    assert depth(mend(value)) == MAX_JSON_DEPTH


def test_text_that_does_not_decode_has_a_marker():
    """Not JSON at all, or deeper than the decoder goes: a marker string, no exception."""
    assert read_json("{") == UNREADABLE
    assert read_json(ABYSS) == TOO_DEEP
    assert read_json("1" * 5000) == UNREADABLE  # past int's digit limit


# --- poison rows on a real server -------------------------------------------------------------


async def _poison(server: RunningServer, room_uuid: str, user: str) -> None:
    """Write the poison rows as an earlier version could have, past every check."""
    store = Store.open(server.database.url, schema=server.database.schema)
    session_id = uuid.UUID(room_uuid)
    now = time.time()
    try:
        async with store.sessions() as s, s.begin():
            s.add_all(
                MessageRow(
                    session_id=session_id,
                    seq=seq,
                    sender=user,
                    kind=kind,
                    body=body,
                    client_msg_id=f"poison-{seq}",
                    sent_at=now,
                )
                for seq, (kind, body, _) in enumerate(POISON_MESSAGES, 1)
            )
            await s.execute(
                update(SessionRow)
                .where(SessionRow.id == session_id)
                .values(last_msg_seq=len(POISON_MESSAGES))
            )
            s.add_all(
                ClientLogRow(
                    session_id=session_id,
                    user_id=user,
                    at=now + i,
                    received_at=now,
                    level="info",
                    event="poison",
                    data=data,
                )
                for i, (data, _) in enumerate(POISON_LOGS)
            )
    finally:
        await store.close()


def _check_messages(messages: list[dict[str, Any]]) -> None:
    assert [m["clientMsgId"] for m in messages] == [
        f"poison-{seq}" for seq in range(1, len(POISON_MESSAGES) + 1)
    ]
    for message, (kind, _, shown) in zip(messages, POISON_MESSAGES, strict=True):
        assert message["kind"] == kind
        if shown:
            assert {k: message[k] for k in shown} == shown
    deep = messages[-1]["data"]
    assert depth(deep) == MAX_JSON_DEPTH - 1 and TOO_DEEP in json.dumps(deep)


async def test_poisoned_rows_read_back_for_members_the_admin_and_sync(server: RunningServer):
    """History, logs and a socket sync answer (200, frames) with the poison mended, on each DB."""
    for _, body, _ in POISON_MESSAGES:
        assert not serves(body), body  # each row really is poison for the old reader
    for data, _ in POISON_LOGS:
        assert not serves(data), data
    async with (
        httpx.AsyncClient(base_url=server.url, timeout=30) as http,
        member(http, server, "alice", 61) as (_alice, welcome),
    ):
        room_uuid = welcome["roomUuid"]
        await _poison(server, room_uuid, "alice")

        for headers in (server.headers("alice"), server.admin_headers()):
            _check_messages(await messages_of(http, room_uuid, headers))
            logs = await http.get(f"/v1/sessions/{room_uuid}/logs", headers=headers)
            assert logs.status_code == 200, logs.text
            lines = logs.json()["logs"]
            assert len(lines) == len(POISON_LOGS)
            for line, (_, shown) in zip(lines, POISON_LOGS, strict=True):
                if shown is not None:
                    assert line["data"] == shown
            assert depth(lines[-1]["data"]) == LOG_DATA_DEPTH
            assert TOO_DEEP in json.dumps(lines[-1]["data"])

        async with member(http, server, "bob", 61) as (bob, _):
            await bob.send(json.dumps({"type": "sync", "after": 0}))
            synced, before = await until(bob, "synced")
            assert synced["lastSeq"] == len(POISON_MESSAGES)
            frames = [f for f in before if f["type"] == "message"]
            _check_messages([{k: v for k, v in f.items() if k != "type"} for f in frames])
