"""A participant's message bookkeeping, fed the frames a server sends (no socket needed)."""

from __future__ import annotations

import json

import httpx

from tavkit.loadtest import LoadConfig
from tavkit.loadtest.participant import Participant, Shared
from tavkit.loadtest.report import Recorder

KEY = "a1" * 32


def message(seq: int, sender: str, cid: str) -> str:
    """A ``message`` frame as the server sends it."""
    return json.dumps(
        {
            "type": "message",
            "seq": seq,
            "from": sender,
            "kind": "custom",
            "data": {"lt": 1.0},
            "clientMsgId": cid,
            "sentAt": 1700000000.0,
        }
    )


async def test_one_send_is_counted_once_live_synced_or_stored_again_in_a_new_session():
    """Live + sync copies count once; the same send under a new session's seq is a duplicate."""
    config = LoadConfig("http://127.0.0.1:9", 1400000001, KEY, participants=2, rooms=1)
    recorder = Recorder()
    async with httpx.AsyncClient() as http:
        shared = Shared(config, recorder, http, room_sims={config.room_of(0): ["a", "b"]})
        p = Participant(shared, 0)
        p.room_uuid = "session-1"
        other = config.user_id(1)
        p._on_frame(message(1, other, f"{other}.1"))  # live
        p._on_frame(message(1, other, f"{other}.1"))  # again in a sync reply
        assert recorder.messages_received == 1 and not recorder.errors
        p.room_uuid = "session-2"  # the old session ended; its sender resent the message here
        p._on_frame(message(1, other, f"{other}.1"))
        p._on_frame(message(2, other, f"{other}.2"))
    assert recorder.messages_received == 2
    assert recorder.errors == {"message:duplicate": 1}
    assert p.deliveries() == {("session-1", 1), ("session-2", 1), ("session-2", 2)}
