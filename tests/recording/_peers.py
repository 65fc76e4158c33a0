"""Two real aiortc peers on loopback: one sends a test pattern and a tone, one receives.

Shared by the writer tests and the crash script (run as a separate process), so it
imports nothing from pytest.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field

from aiortc import MediaStreamTrack, RTCPeerConnection, RTCRtpReceiver, RTCRtpSender

from tavkit.client._pattern import PatternVideoTrack, ToneAudioTrack
from tavkit.ice import configuration, gather_on

LOOPBACK = ["127.0.0.1"]


@dataclass
class Link:
    """The two connections and what the receiving one got, as (receiver, track) pairs."""

    sender: RTCPeerConnection
    receiver: RTCPeerConnection
    received: list[tuple[RTCRtpReceiver, MediaStreamTrack]] = field(default_factory=list)


@asynccontextmanager
async def linked_peers(
    *,
    width: int = 320,
    height: int = 240,
    fps: int = 15,
    tone: int = 440,
    codecs: dict[str, str] | None = None,
) -> AsyncIterator[Link]:
    """A sender publishing a pattern and a tone to a receiver; both closed on exit.

    ``codecs`` forces a codec per kind (e.g. ``{"video": "H264", "audio": "PCMU"}``).

    The receiver's tracks are in ``received`` as soon as this yields (aiortc fires its
    "track" event while the offer is applied, before any media flows).
    """
    link = Link(RTCPeerConnection(configuration()), RTCPeerConnection(configuration()))
    link.sender.addTrack(PatternVideoTrack(width, height, fps))
    link.sender.addTrack(ToneAudioTrack(tone))
    for transceiver in link.sender.getTransceivers():
        wanted = (codecs or {}).get(transceiver.kind)
        if wanted:
            capabilities = RTCRtpSender.getCapabilities(transceiver.kind).codecs
            transceiver.setCodecPreferences(
                [
                    c
                    for c in capabilities
                    if c.mimeType.lower() == f"{transceiver.kind}/{wanted}".lower()
                ]
            )

    @link.receiver.on("track")
    def on_track(track: MediaStreamTrack) -> None:
        receiver = next(
            t.receiver for t in link.receiver.getTransceivers() if t.receiver.track is track
        )
        link.received.append((receiver, track))

    try:
        gather_on(link.sender, LOOPBACK)
        await link.sender.setLocalDescription(await link.sender.createOffer())
        await link.receiver.setRemoteDescription(link.sender.localDescription)
        gather_on(link.receiver, LOOPBACK)
        await link.receiver.setLocalDescription(await link.receiver.createAnswer())
        await link.sender.setRemoteDescription(link.receiver.localDescription)
        yield link
    finally:
        await asyncio.gather(link.sender.close(), link.receiver.close())
