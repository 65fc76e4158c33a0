"""The in-call message log without I/O: order, duplicates, gaps, acknowledgements, resends."""

from __future__ import annotations

import json
import random

import pytest

from tavkit.client._im import MessageLog
from tavkit.errors import ServerCode, ServerError
from tavkit.protocol import MAX_FRAME_BYTES, ChatMessage, SendMessage, Sync, encode

ROOM = "1b4e28ba-2fa1-11d2-883f-0016d3cca427"
OTHER_ROOM = "6fa459ea-ee8a-3ca4-894e-db77e160355e"


def msg(seq: int, sender: str = "bob", client_msg_id: str | None = None) -> ChatMessage:
    """A stored text message as the server would send it."""
    return ChatMessage(
        seq=seq,
        sender=sender,
        kind="text",
        client_msg_id=client_msg_id or f"c-{sender}-{seq}",
        sent_at=1_700_000_000.0 + seq,
        text=f"message {seq}",
    )


def delivered_seqs(log: MessageLog, messages: list[ChatMessage]) -> list[int]:
    """Feed ``messages`` in the given order; the seqs delivered, in delivery order."""
    out: list[int] = []
    for message in messages:
        out += [m.seq for m in log.receive(message).deliver]
    return out


def test_first_connection_asks_for_the_whole_history() -> None:
    """On the first welcome the log asks for ``sync {after: 0}`` (a late joiner's history)."""
    log = MessageLog("alice")
    assert log.connected(ROOM) == [Sync(after=0)]


def test_nothing_stored_past_what_was_delivered_needs_no_sync() -> None:
    """A welcome whose ``lastSeq`` is no further than what was delivered asks for no
    ``sync`` (a new session, a resume that missed nothing); unacknowledged sends still go,
    and a gap in what then comes live still asks for one."""
    log = MessageLog("alice")
    assert log.connected(ROOM, last_seq=0) == []
    assert delivered_seqs(log, [msg(1), msg(2)]) == [1, 2]
    frame = log.compose("text", "hi")
    assert log.connected(ROOM, last_seq=2) == [frame]  # resumed, nothing missed
    assert log.connected(ROOM, last_seq=3) == [Sync(after=2), frame]  # missed one
    log.synced()
    assert log.connected(OTHER_ROOM, last_seq=0) == [frame]
    gap = log.receive(msg(2))
    assert gap.deliver == [] and gap.send == [Sync(after=0)]


def test_in_order_messages_are_delivered_at_once() -> None:
    """Consecutive seqs are delivered as they come."""
    log = MessageLog("alice")
    log.connected(ROOM)
    assert delivered_seqs(log, [msg(1), msg(2), msg(3)]) == [1, 2, 3]
    assert log.delivered == 3


def test_duplicates_are_dropped() -> None:
    """A message seen again (live and in a sync reply) is delivered once."""
    log = MessageLog("alice")
    log.connected(ROOM)
    assert delivered_seqs(log, [msg(1), msg(2), msg(1), msg(2), msg(3), msg(2)]) == [1, 2, 3]


def test_a_gap_is_held_until_filled_and_asks_for_a_sync() -> None:
    """A message past a gap waits; the first gap asks for a sync; filling it delivers all."""
    log = MessageLog("alice")
    log.connected(ROOM)
    log.synced()  # the first sync's reply is complete
    first = log.receive(msg(1))
    assert [m.seq for m in first.deliver] == [1]
    gap = log.receive(msg(3))
    assert gap.deliver == [] and gap.send == [Sync(after=1)]
    assert log.held == [3]
    again = log.receive(msg(4))
    assert again.deliver == [] and again.send == []  # one sync at a time
    filled = log.receive(msg(2))
    assert [m.seq for m in filled.deliver] == [2, 3, 4]
    assert log.held == [] and log.synced() == []


def test_a_gap_still_open_after_synced_asks_again() -> None:
    """If a sync's reply did not fill the gap, ``synced`` asks once more."""
    log = MessageLog("alice")
    log.connected(ROOM)
    log.receive(msg(5))
    assert log.synced() == [Sync(after=0)]


def test_any_arrival_order_delivers_each_seq_once_in_order() -> None:
    """Shuffled arrivals with duplicates always deliver 1..n exactly once, ascending."""
    rng = random.Random(7)
    for _ in range(200):
        n = rng.randint(1, 30)
        arrivals = [msg(seq) for seq in range(1, n + 1)]
        arrivals += [msg(rng.randint(1, n)) for _ in range(rng.randint(0, n))]
        rng.shuffle(arrivals)
        log = MessageLog("alice")
        log.connected(ROOM)
        assert delivered_seqs(log, arrivals) == list(range(1, n + 1))


def test_resume_syncs_after_the_last_delivered_and_resends_unacknowledged() -> None:
    """After a reconnect: ``sync {after: delivered}``, then every unacked frame, unchanged."""
    log = MessageLog("alice")
    log.connected(ROOM)
    delivered_seqs(log, [msg(1), msg(2)])
    first = log.compose("text", "hello")
    second = log.compose("custom", {"cmd": "raise-hand"})
    assert log.connected(ROOM) == [Sync(after=2), first, second]
    assert log.unacked == [first.client_msg_id, second.client_msg_id]


def test_the_echo_acknowledges_and_stops_resending() -> None:
    """Our own message coming back is the acknowledgement; it is delivered too."""
    log = MessageLog("alice")
    log.connected(ROOM)
    frame = log.compose("text", "hi")
    echo = msg(1, "alice", frame.client_msg_id)
    inbound = log.receive(echo)
    assert inbound.deliver == [echo] and inbound.acked == [echo]
    assert log.unacked == []
    assert log.connected(ROOM) == [Sync(after=1)]


def test_a_sync_reply_carrying_our_message_acknowledges_it() -> None:
    """With the echo lost, the sync reply acknowledges; the answer to the resend changes nothing."""
    log = MessageLog("alice")
    log.connected(ROOM)
    frame = log.compose("text", "hi")
    stored = msg(1, "alice", frame.client_msg_id)
    assert log.connected(ROOM) == [Sync(after=0), frame]  # resumed: sync, then resend
    from_sync = log.receive(stored)
    assert from_sync.deliver == [stored] and from_sync.acked == [stored]
    from_resend = log.receive(stored)  # the server answers the resend with the stored copy
    assert from_resend.deliver == [] and from_resend.acked == []


def test_another_senders_message_with_our_id_is_no_acknowledgement() -> None:
    """Only a message from this user acknowledges one of its clientMsgIds."""
    log = MessageLog("alice")
    log.connected(ROOM)
    frame = log.compose("text", "hi")
    inbound = log.receive(msg(1, "bob", frame.client_msg_id))
    assert inbound.acked == [] and log.unacked == [frame.client_msg_id]


def test_a_refusal_drops_the_message_and_other_errors_are_not_ours() -> None:
    """An error whose ref is a pending frame's id refuses it; other refs are not ours."""
    log = MessageLog("alice")
    frame = log.compose("text", "")
    assert frame.id == frame.client_msg_id
    assert not log.refused(None) and not log.refused("unknown")
    assert log.refused(frame.client_msg_id)
    assert log.unacked == [] and not log.refused(frame.client_msg_id)


def test_forget_stops_resending() -> None:
    """A message its sender gave up on is not resent."""
    log = MessageLog("alice")
    frame = log.compose("text", "late")
    log.forget(frame.client_msg_id)
    assert log.connected(ROOM) == [Sync(after=0)]


def test_a_new_session_starts_numbering_again() -> None:
    """Entering a new session (after the old one closed) delivers its seq 1 again."""
    log = MessageLog("alice")
    log.connected(ROOM)
    delivered_seqs(log, [msg(1), msg(2)])
    assert log.connected(OTHER_ROOM) == [Sync(after=0)]
    assert delivered_seqs(log, [msg(1)]) == [1]


def test_compose_builds_the_contract_frames() -> None:
    """Text and custom frames carry clientMsgId (32 hex digits), kind and text or data."""
    log = MessageLog("alice")
    text = log.compose("text", "hi")
    custom = log.compose("custom", {"a": [1, 2.5, None, "x"]})
    assert isinstance(text, SendMessage) and len(text.client_msg_id) == 32
    assert int(text.client_msg_id, 16) >= 0 and text.client_msg_id != custom.client_msg_id
    assert json.loads(encode(text)) == {
        "type": "message",
        "clientMsgId": text.client_msg_id,
        "kind": "text",
        "text": "hi",
        "id": text.client_msg_id,
    }
    assert json.loads(encode(custom))["data"] == {"a": [1, 2.5, None, "x"]}


def test_compose_refuses_what_cannot_be_sent() -> None:
    """Wrong types are programming errors; a frame too big for the socket is server 10004."""
    log = MessageLog("alice")
    with pytest.raises(TypeError):
        log.compose("text", 42)
    with pytest.raises(ValueError):
        log.compose("custom", float("nan"))
    with pytest.raises(TypeError):
        log.compose("custom", {1, 2})
    with pytest.raises(ValueError):
        log.compose("sticker", "x")
    with pytest.raises(ServerError) as caught:
        log.compose("text", "x" * MAX_FRAME_BYTES)
    assert caught.value.error_code == ServerCode.INVALID_PARAMETER
    assert log.unacked == []
