"""Remote audio decoded on the event loop: the same frames, no thread hop, a clean end.

Real aiortc peers on loopback (``tests/recording/_peers.py``): a tone in Opus (and in
PCMU), received by a receiver whose decoder queue ``decode_audio_inline`` replaced.
"""

from __future__ import annotations

import asyncio
import os

import pytest
from aiortc.jitterbuffer import JitterFrame
from aiortc.mediastreams import MediaStreamError
from aiortc.rtcrtpparameters import RTCRtpCodecParameters
from av import AudioFrame
from recording._peers import linked_peers
from server._threads import media_threads

from tavkit.client._decode import InlineDecoding, decode_audio_inline
from tavkit.client._encode import OpusPacketEncoder
from tavkit.client._pattern import ToneAudioTrack

TIMEOUT = float(os.environ.get("TAVKIT_TEST_TIMEOUT", "20"))
OPUS = RTCRtpCodecParameters(mimeType="audio/opus", clockRate=48000, channels=2, payloadType=111)


@pytest.mark.parametrize("codec", ["opus", "PCMU"])
async def test_audio_decoded_on_the_loop_arrives_as_before_and_ends_with_its_receiver(
    codec: str,
) -> None:
    """A receiver switched before its first packet hands its track 48 kHz (Opus) or
    8 kHz (PCMU) frames, every one decoded by the stand-in for its queue; video is left
    to aiortc's thread; when the connection closes the track ends and no decoder thread
    is left behind."""
    async with linked_peers(codecs={"audio": codec}) as link:
        by_kind = {track.kind: (receiver, track) for receiver, track in link.received}
        audio_receiver, audio = by_kind["audio"]
        assert decode_audio_inline(by_kind["video"][0]) is False
        assert decode_audio_inline(audio_receiver) is True
        inline = audio_receiver._RTCRtpReceiver__decoder_queue  # type: ignore[attr-defined]
        assert isinstance(inline, InlineDecoding)

        frames = []
        async with asyncio.timeout(TIMEOUT):
            while len(frames) < 25:
                frames.append(await audio.recv())
        assert all(isinstance(f, AudioFrame) for f in frames)
        assert {f.sample_rate for f in frames} == {48000 if codec == "opus" else 8000}
        assert inline.decoded >= len(frames) and inline.failed == 0
        assert decode_audio_inline(audio_receiver) is False  # started: left as it is
    with pytest.raises(MediaStreamError):
        async with asyncio.timeout(TIMEOUT):
            while True:  # the frames still queued, then the end
                await audio.recv()
    assert not [t for t in media_threads() if t.name == "audio-decoder" and t.is_alive()]


async def test_a_frame_that_does_not_decode_is_skipped_and_the_next_one_decodes() -> None:
    """Junk from a stranger's sender is counted and skipped, an empty packet never
    reaches the decoder (to FFmpeg it means "drain", after which nothing decodes), and
    the next real Opus packet decodes onto the track's queue at once, on the loop."""
    tone, encoder = ToneAudioTrack(), OpusPacketEncoder()
    packets = [bytes(p) for _ in range(2) for p in encoder.encode(await tone.recv())]
    output: asyncio.Queue[object] = asyncio.Queue()
    inline = InlineDecoding(output)
    for data in (b"", b"\xff\xff\xff", packets[0], packets[1]):
        inline.put((OPUS, JitterFrame(data=data, timestamp=0)))
    assert inline.failed == 1
    assert inline.decoded == 2 and output.qsize() == 2
    assert isinstance(output.get_nowait(), AudioFrame)
