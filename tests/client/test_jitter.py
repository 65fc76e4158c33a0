"""The SFU subscription's video jitter buffer: a lost packet stops the picture briefly.

Real aiortc RTP packets through aiortc's own buffer and tavkit's; the clock is a
counter the test moves, so nothing depends on the machine's speed.
"""

from __future__ import annotations

from aiortc.jitterbuffer import JitterBuffer, JitterFrame
from aiortc.rtp import RtpPacket

from tavkit.client._jitter import STALL_AFTER, GapSkippingJitterBuffer

PACKETS_PER_FRAME = 2


def packet(seq: int) -> RtpPacket:
    """Packet ``seq`` of a video whose frames are two packets each (payload: its number)."""
    p = RtpPacket(payload_type=96, sequence_number=seq, timestamp=3000 * (seq // 2), ssrc=1)
    p._data = seq.to_bytes(2, "big")  # type: ignore[attr-defined]  # what aiortc's depayloader sets
    return p


class Clock:
    """A clock the test moves by hand."""

    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def feed(
    buffer: JitterBuffer, seqs: range | list[int], clock: Clock | None = None
) -> list[tuple[bool, JitterFrame | None]]:
    """Add packets in order, 1/30 s apart on ``clock``; what each ``add`` returned."""
    out = []
    for seq in seqs:
        if clock is not None:
            clock.now += 1 / 30
        out.append(buffer.add(packet(seq)))
    return out


def frames(results: list[tuple[bool, JitterFrame | None]]) -> list[list[int]]:
    """The frames handed out, each as the sequence numbers of its packets."""
    return [
        [int.from_bytes(frame.data[i : i + 2], "big") for i in range(0, len(frame.data), 2)]
        for _, frame in results
        if frame is not None
    ]


def test_aiortcs_buffer_holds_every_frame_behind_a_lost_packet() -> None:
    """The baseline: behind one lost packet, aiortc's buffer gives no frame for 500 packets."""
    buffer = JitterBuffer(capacity=512, is_video=True)
    before = frames(feed(buffer, range(5)))
    after = frames(feed(buffer, range(6, 506)))  # seq 5 never comes
    assert before == [[0, 1], [2, 3]]
    assert after == []


def test_a_lost_packet_stops_the_video_for_half_a_second_and_asks_for_a_keyframe() -> None:
    """After STALL_AFTER with packets arriving and none completing a frame, the buffer
    skips to a whole frame after the gap, asks for a keyframe once, and frames
    flow again; the broken frame (seqs 4-5) is never handed to the decoder."""
    clock = Clock()
    buffer = GapSkippingJitterBuffer(clock=clock)
    assert frames(feed(buffer, range(5), clock)) == [[0, 1], [2, 3]]
    waited = int(STALL_AFTER * 30) + 2  # packets 1/30 s apart: a little over STALL_AFTER
    results = feed(buffer, range(6, 6 + waited), clock)
    pli = [i for i, (flag, _) in enumerate(results) if flag]
    assert len(pli) == 1 and buffer.skipped == 1
    got = frames(results)
    assert got, "no frame after the gap"
    # It cannot tell whether the packet after the gap starts a frame, so it starts at
    # the next timestamp (that frame is broken anyway: it refers to the lost one).
    assert got[0] == [8, 9]
    assert all(4 not in seqs and 5 not in seqs for seqs in got)
    assert frames(feed(buffer, range(6 + waited, 6 + waited + 10), clock))  # and they go on


def test_a_packet_repaired_in_time_loses_no_frame() -> None:
    """A retransmission that arrives within STALL_AFTER fills the gap: every frame comes
    out, in order, and no keyframe is asked for."""
    clock = Clock()
    buffer = GapSkippingJitterBuffer(clock=clock)
    results = feed(buffer, [*range(5), *range(6, 10), 5, *range(10, 14)], clock)
    assert not any(flag for flag, _ in results) and buffer.skipped == 0
    assert frames(results) == [[2 * i, 2 * i + 1] for i in range(6)]
