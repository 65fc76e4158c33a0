"""The SFU subscription's answer (tavkit.client._sfu): what aiortc can route."""

from __future__ import annotations

from aiortc import RTCPeerConnection, RTCSessionDescription

from tavkit.client._sfu import without_rtx

FINGERPRINT = ":".join(["AB"] * 32)


def section(kind: str, mid: int, ssrc: int) -> str:
    """One m-line of a Janus multistream subscription offer (as Janus 1.x writes it)."""
    lines = [
        f"m={kind} 9 UDP/TLS/RTP/SAVPF " + ("111" if kind == "audio" else "96 97"),
        "c=IN IP4 192.0.2.2",
        "a=sendonly",
        f"a=mid:{mid}",
        "a=rtcp-mux",
        "a=ice-ufrag:xvFT",
        "a=ice-pwd:cl3ZcDqjWPhgpixosctA19",
        f"a=fingerprint:sha-256 {FINGERPRINT}",
        "a=setup:actpass",
    ]
    if kind == "audio":
        lines += [f"a=ssrc:{ssrc} cname:janus", "a=rtpmap:111 opus/48000/2"]
    else:
        lines += [
            f"a=ssrc-group:FID {ssrc} {ssrc + 1}",
            f"a=ssrc:{ssrc} cname:janus",
            f"a=ssrc:{ssrc + 1} cname:janus",
            "a=rtpmap:96 VP8/90000",
            "a=rtcp-fb:96 nack",
            "a=rtcp-fb:96 nack pli",
            "a=rtpmap:97 rtx/90000",
            "a=fmtp:97 apt=96",
        ]
    lines += ["a=candidate:1 1 udp 2015363327 192.0.2.2 40329 typ host", "a=end-of-candidates"]
    return "\r\n".join(lines)


# Two other publishers: two video m-lines sharing RTX payload type 97.
OFFER = "\r\n".join(
    [
        "v=0",
        "o=- 1 1 IN IP4 192.0.2.2",
        "s=VideoRoom 1",
        "t=0 0",
        "a=group:BUNDLE 0 1 2 3",
        "a=msid-semantic:WMS *",
        section("audio", 0, 1000),
        section("video", 1, 2000),
        section("audio", 2, 3000),
        section("video", 3, 4000),
        "",
    ]
)


def test_without_rtx_removes_rtx_and_keeps_the_rest() -> None:
    """The RTX payload type, its attributes, the FID groups and the RTX SSRCs go; every
    other line, the media SSRCs, NACK feedback and the CRLF line ends stay."""
    stripped = without_rtx(OFFER)
    lines = stripped.split("\r\n")
    assert [line for line in lines if line.startswith("m=video")] == [
        "m=video 9 UDP/TLS/RTP/SAVPF 96"
    ] * 2
    assert "rtx" not in stripped and "97" not in stripped and "FID" not in stripped
    assert "a=ssrc:2001" not in stripped and "a=ssrc:4001" not in stripped
    assert "a=ssrc:2000 cname:janus" in lines and "a=ssrc:4000 cname:janus" in lines
    assert lines.count("a=rtcp-fb:96 nack") == 2
    removed = {line for line in OFFER.split("\r\n")} - set(lines)
    assert all("97" in line or "FID" in line or "01 cname" in line for line in removed)
    assert without_rtx(stripped) == stripped


async def test_aiortc_answers_the_stripped_offer_without_rtx() -> None:
    """aiortc's answer to the stripped offer negotiates VP8 with NACK and no RTX, so Janus
    resends a lost packet on the stream's own SSRC, which aiortc routes to its receiver."""
    pc = RTCPeerConnection()
    try:
        await pc.setRemoteDescription(RTCSessionDescription(without_rtx(OFFER), "offer"))
        await pc.setLocalDescription(await pc.createAnswer())
        answer = pc.localDescription.sdp
    finally:
        await pc.close()
    assert "rtx" not in answer and "ssrc-group" not in answer
    assert answer.count("a=rtcp-fb:96 nack\r\n") == 2
