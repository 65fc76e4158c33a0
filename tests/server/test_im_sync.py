"""The socket's message gate (server/im/sync.py), driven without sockets or a database."""

from __future__ import annotations

import pytest

from tavkit.protocol import ChatMessage
from tavkit.server.im.sync import Overflow, SyncGate


def msg(seq: int) -> ChatMessage:
    return ChatMessage(
        seq=seq, sender="alice", kind="text", client_msg_id=f"m{seq}", sent_at=0.0, text="hi"
    )


def seqs(messages: list[ChatMessage]) -> list[int]:
    return [m.seq for m in messages]


def test_live_messages_pass_straight_through_when_no_sync_runs():
    """Without a sync reply every live message is sent at once, in arrival order."""
    gate = SyncGate(held_max=8)
    assert seqs(gate.live(msg(1))) == [1]
    assert seqs(gate.live(msg(2))) == [2]


def test_live_messages_wait_for_the_reply_and_skip_what_it_carried():
    """Messages arriving during a reply are held, then released minus those it sent."""
    gate = SyncGate(held_max=8)
    gate.start(after=0)
    assert gate.live(msg(3)) == []
    assert gate.live(msg(4)) == []
    assert seqs(gate.page([msg(1), msg(2), msg(3)])) == [1, 2, 3]
    assert gate.synced(last_seq=4) == 3
    assert seqs(gate.finish()) == [4]
    assert not gate.syncing


def test_a_late_live_copy_of_a_carried_message_is_not_sent_again():
    """After the reply, a live event for a seq it already carried is dropped."""
    gate = SyncGate(held_max=8)
    gate.start(after=5)
    gate.page([msg(6), msg(7)])
    gate.finish()
    assert gate.live(msg(7)) == []
    assert seqs(gate.live(msg(8))) == [8]


def test_pages_advance_the_cursor():
    """Each page moves the cursor to its last seq, so the next read starts after it."""
    gate = SyncGate(held_max=8)
    gate.start(after=10)
    assert gate.cursor == 10
    gate.page([msg(11), msg(12)])
    assert gate.cursor == 12
    gate.page([])
    assert gate.cursor == 12


@pytest.mark.parametrize(
    ("after", "last_seq", "expected"),
    [(0, 0, 0), (5, 9, 5), (9, 5, 5)],
)
def test_an_empty_reply_names_the_clients_after_but_never_past_the_end(after, last_seq, expected):
    """With nothing to send, synced is the client's own after, capped at the session's end."""
    gate = SyncGate(held_max=8)
    gate.start(after=after)
    gate.page([])
    assert gate.synced(last_seq) == expected


def test_holding_more_than_the_limit_asks_for_a_resync():
    """One message past held_max raises Overflow, and nothing held is lost meanwhile."""
    gate = SyncGate(held_max=2)
    gate.start(after=0)
    gate.live(msg(1))
    gate.live(msg(2))
    with pytest.raises(Overflow):
        gate.live(msg(3))
    assert seqs(gate.finish()) == [1, 2, 3]


def test_an_abandoned_reply_still_releases_what_it_held():
    """A reply that stops early (socket closing, history failing) releases its holds."""
    gate = SyncGate(held_max=8)
    gate.start(after=0)
    gate.live(msg(1))
    assert seqs(gate.finish()) == [1]
