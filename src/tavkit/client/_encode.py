"""Encode-once codecs: VP8 and Opus encoders whose packets every peer connection can send.

aiortc gives each ``RTCRtpSender`` its own encoder, so a publisher in a mesh of N
peers encodes every frame N times. aiortc's sender also accepts tracks that yield
already-encoded :class:`av.Packet` objects (it then only packetises them with
``Encoder.pack``), so we encode each frame once here and hand the same packets to
every sender. What the senders can no longer do per peer, we do for all:

* **Keyframes.** A sender that receives a PLI/FIR forces a keyframe from its own
  encoder; here each video sender's request is routed to the shared encoder (so
  every receiver gets that keyframe). One is also forced whenever a peer starts
  reading and every ``keyframe_interval`` seconds.
* **Bitrate.** REMB feedback adapted each sender's encoder; here one target serves
  all peers - right for a LAN or a small mesh, not for peers on very different links.

The VP8 encoder runs in a worker thread owned by the publisher, Opus inline (see
``_publish.py``).
"""

from __future__ import annotations

import fractions
from typing import Any, Final

import av
from av import AudioFrame, VideoFrame
from av.packet import Packet

from tavkit.client._pattern import AUDIO_RATE, VIDEO_CLOCK

__all__ = ["OpusPacketEncoder", "Vp8PacketEncoder"]

_VIDEO_TIME_BASE: Final = fractions.Fraction(1, VIDEO_CLOCK)
_AUDIO_TIME_BASE: Final = fractions.Fraction(1, AUDIO_RATE)
_OPUS_FRAME: Final = 960


class Vp8PacketEncoder:
    """libvpx in real-time mode, one context for every receiver of this publisher.

    The settings follow aiortc's own VP8 encoder (real-time deadline, no lag, CBR at
    the target) so the stream looks to a browser exactly like aiortc's.
    """

    def __init__(self, bitrate: int = 1_000_000, threads: int = 1) -> None:
        if bitrate < 50_000:
            raise ValueError("a video bitrate under 50 kbit/s is not usable")
        self.bitrate = bitrate
        self._threads = threads
        self._codec: av.video.codeccontext.VideoCodecContext | None = None

    def encode(self, frame: VideoFrame, keyframe: bool) -> list[Packet[Any]]:
        """Encode one frame (in 90 kHz time); a keyframe when asked or when the size changes."""
        if frame.format.name != "yuv420p":
            frame = frame.reformat(format="yuv420p")
        codec = self._codec
        if codec is None or (codec.width, codec.height) != (frame.width, frame.height):
            codec = self._codec = self._open(frame.width, frame.height)
            keyframe = True
        if keyframe:
            frame.pict_type = av.video.frame.PictureType.I
        packets = codec.encode(frame)
        for packet in packets:
            packet.time_base = _VIDEO_TIME_BASE
        return list(packets)

    def _open(self, width: int, height: int) -> av.video.codeccontext.VideoCodecContext:
        codec = av.CodecContext.create("libvpx", "w")
        codec.width = width
        codec.height = height
        codec.pix_fmt = "yuv420p"
        codec.bit_rate = self.bitrate
        codec.time_base = _VIDEO_TIME_BASE
        codec.gop_size = 3000  # keyframes are forced, not scheduled by libvpx
        codec.qmin = 2
        codec.qmax = 56
        codec.thread_count = self._threads
        codec.options = {
            "bufsize": str(self.bitrate),
            "cpu-used": "-6",
            "deadline": "realtime",
            "lag-in-frames": "0",
            "minrate": str(self.bitrate),
            "maxrate": str(self.bitrate),
            "noise-sensitivity": "4",
            "overshoot-pct": "15",
            "partitions": "0",
            "static-thresh": "1",
            "undershoot-pct": "100",
        }
        return codec


class OpusPacketEncoder:
    """libopus at 48 kHz stereo in 20 ms packets, with timestamps that count samples.

    libopus stamps its first packet with a negative pre-skip; RTP wants a steady
    clock, so the packets are restamped by the samples they carry.
    """

    def __init__(self, bitrate: int = 64_000) -> None:
        codec = av.CodecContext.create("libopus", "w")
        codec.sample_rate = AUDIO_RATE
        codec.layout = "stereo"
        codec.format = "s16"
        codec.bit_rate = bitrate
        codec.time_base = _AUDIO_TIME_BASE
        codec.options = {"application": "voip"}
        self._codec = codec
        self._resampler = av.AudioResampler(
            format="s16", layout="stereo", rate=AUDIO_RATE, frame_size=_OPUS_FRAME
        )
        self._samples = 0

    def encode(self, frame: AudioFrame, keyframe: bool = False) -> list[Packet[Any]]:
        """Encode one frame of any rate and layout; every Opus packet stands alone."""
        out: list[Packet[Any]] = []
        for chunk in self._resampler.resample(frame):
            for packet in self._codec.encode(chunk):
                packet.pts = self._samples
                packet.dts = self._samples
                packet.time_base = _AUDIO_TIME_BASE
                self._samples += _OPUS_FRAME
                out.append(packet)
        return out
