"""Reading an SDP's media directions against the privilege bits (tavkit.protocol.sdp)."""

from __future__ import annotations

import pytest

from tavkit.auth import Privilege
from tavkit.protocol.sdp import (
    allowed_direction,
    mark_slides,
    media_sections,
    refusal,
    slides_mids,
)

OFFER = """v=0
o=- 1 2 IN IP4 127.0.0.1
s=-
t=0 0
m=audio 9 UDP/TLS/RTP/SAVPF 111
a=mid:0
a={audio}
m=video 9 UDP/TLS/RTP/SAVPF 96
a=mid:1
a={video}
m=application 9 UDP/DTLS/SCTP webrtc-datachannel
a=mid:2
"""

VIEWER = int(Privilege.VIEWER)
ALL = int(Privilege.ALL)


def sdp(audio: str = "sendrecv", video: str = "sendrecv") -> str:
    return OFFER.format(audio=audio, video=video).replace("\n", "\r\n")


def test_sections_carry_kind_and_direction():
    """Each m-line is read with its own direction; the data channel is kept apart."""
    sections = media_sections(sdp("sendonly", "recvonly"))
    assert [(s.kind, s.direction) for s in sections] == [
        ("audio", "sendonly"),
        ("video", "recvonly"),
        ("application", "sendrecv"),
    ]


def test_a_viewer_sending_is_refused_naming_the_bit():
    """A viewer (42) offering sendrecv audio is refused with SEND_AUDIO named."""
    reason = refusal(sdp(), VIEWER)
    assert reason is not None and "SEND_AUDIO (4)" in reason


def test_a_viewer_receiving_only_fits():
    """recvonly audio and video are exactly what a viewer may do."""
    assert refusal(sdp("recvonly", "recvonly"), VIEWER) is None
    assert refusal(sdp("inactive", "inactive"), VIEWER) is None


def test_receiving_needs_the_receive_bit():
    """A publisher without receive bits may not ask to receive video."""
    publisher = int(Privilege.ENTER | Privilege.SEND_AUDIO | Privilege.SEND_VIDEO)
    assert refusal(sdp("sendonly", "sendonly"), publisher) is None
    reason = refusal(sdp("sendonly", "sendrecv"), publisher)
    assert reason is not None and "RECV_VIDEO (32)" in reason


def test_a_rejected_section_carries_nothing():
    """Port 0 means the section is stopped: no bit is needed whatever its direction."""
    text = sdp().replace("m=audio 9", "m=audio 0").replace("m=video 9", "m=video 0")
    assert refusal(text, VIEWER) is None


def test_the_session_level_direction_applies_to_silent_sections():
    """A session-level a=sendonly covers sections that set no direction."""
    text = "v=0\r\na=sendonly\r\nm=audio 9 RTP/AVP 0\r\n"
    assert media_sections(text)[0].direction == "sendonly"
    assert refusal(text, VIEWER) is not None


def test_a_slides_video_is_a_sub_stream():
    """Screen share (a=content:slides) needs the sub-stream bits, not the camera's."""
    text = sdp("inactive", "sendonly").replace("a=mid:1", "a=mid:1\r\na=content:slides")
    camera_only = int(Privilege.ENTER | Privilege.SEND_VIDEO)
    reason = refusal(text, camera_only)
    assert reason is not None and "SEND_SUB (64)" in reason
    assert refusal(text, int(Privilege.ENTER | Privilege.SEND_SUB)) is None


SHARING = sdp("sendrecv", "sendrecv").replace(
    "m=application", "m=video 9 UDP/TLS/RTP/SAVPF 96\r\na=mid:3\r\na=sendonly\r\nm=application"
)


def test_marking_a_mid_makes_its_video_section_the_sub_stream():
    """mark_slides puts a=content:slides on the screen's section only, once, keeping CRLF."""
    marked = mark_slides(SHARING, {"3"})
    assert "a=mid:3\r\na=content:slides\r\n" in marked
    assert slides_mids(marked) == {"3"}
    assert [s.kind for s in media_sections(marked)] == ["audio", "video", "sub", "application"]
    assert mark_slides(marked, {"3"}) == marked
    assert mark_slides(SHARING, set()) == SHARING
    assert mark_slides(SHARING, {"0", "2"}) == SHARING  # audio and data are never slides


def test_a_screen_needs_bit_64_to_send_and_128_to_receive():
    """The camera's bits neither send nor receive a marked screen; the sub-stream's do."""
    sending = mark_slides(SHARING, {"3"})
    no_send_sub = ALL & ~int(Privilege.SEND_SUB)
    reason = refusal(sending, no_send_sub)
    assert reason is not None and "m-line 2 (sub)" in reason and "SEND_SUB (64)" in reason
    assert refusal(sending, ALL) is None
    receiving = sending.replace("a=content:slides\r\na=sendonly", "a=content:slides\r\na=recvonly")
    no_recv_sub = ALL & ~int(Privilege.RECV_SUB)
    reason = refusal(receiving, no_recv_sub)
    assert reason is not None and "RECV_SUB (128)" in reason
    inactive = sending.replace("a=content:slides\r\na=sendonly", "a=content:slides\r\na=inactive")
    assert refusal(inactive, no_recv_sub & no_send_sub) is None


def test_mids_named_as_screens_are_checked_as_screens_unmarked():
    """An answer that leaves out the offer's mark is read with the offer's screen mids."""
    unmarked = SHARING.replace("a=mid:3\r\na=sendonly", "a=mid:3\r\na=recvonly")
    no_recv_sub = ALL & ~int(Privilege.RECV_SUB)
    assert refusal(unmarked, no_recv_sub) is None  # read as a camera on its own
    reason = refusal(unmarked, no_recv_sub, screens={"3"})
    assert reason is not None and "RECV_SUB (128)" in reason
    assert [s.kind for s in media_sections(unmarked, {"3", "0"})][:3] == ["audio", "video", "sub"]


@pytest.mark.parametrize(
    ("privileges", "expected"),
    [
        (ALL, "sendrecv"),
        (VIEWER, "recvonly"),
        (int(Privilege.ENTER | Privilege.SEND_AUDIO), "sendonly"),
        (int(Privilege.ENTER), "inactive"),
    ],
)
def test_allowed_direction_is_the_widest_that_fits(privileges, expected):
    """Clients derive each transceiver's direction from the bits, so they never trip the check."""
    assert allowed_direction("audio", privileges) == expected
    assert refusal(sdp(expected, "inactive"), privileges) is None
