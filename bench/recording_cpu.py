"""Recording benchmark: CPU per recorded participant, passthrough against decode + re-encode.

Run from the repository root::

    .venv/bin/python bench/recording_cpu.py [--runs 2] [--seconds 8] [--no-write]

N participants (1, 2, 4) publish a 640x480 test pattern at 30 fps plus a 440 Hz tone
from a **subprocess** (one encode-once publisher fanned out to N peer connections,
so its cost hardly grows with N and never lands on the measured process). This
process answers with N receive-only aiortc peer connections, each recorded by its own
:class:`~tavkit.recording.ParticipantRecorder`, and measures its own process CPU time
(``time.process_time``: every thread - aiortc's receive path and decoders, the
writers) over a window. Three modes, interleaved run by run so machine load hits all
alike:

* **receive only** - the connections, with the encoded frames dropped where the
  recorder would take them (no decoding): the floor any recorder pays;
* **passthrough** - the recorder as the server runs it: VP8 and Opus muxed as received;
* **transcode** - ``passthrough=False``: aiortc decodes, the recorder encodes VP8 and
  Opus again (what a recorder built on decoded frames would cost).

The result is CPU seconds per second of media per participant (the share of one
core), printed and written into ``bench/RESULTS.md`` between the
``<!-- recording_cpu -->`` markers.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import queue
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import av
from _common import RESULTS, write_section
from aiortc import MediaStreamTrack, RTCPeerConnection, RTCRtpSender, RTCSessionDescription

from tavkit.client import TestPattern
from tavkit.client._publish import Publisher
from tavkit.ice import configuration, gather_on
from tavkit.recording import ParticipantRecorder

LOOPBACK = ["127.0.0.1"]
MODES = ("receive only", "passthrough", "transcode")
COUNTS = (1, 2, 4)
WAIT = 60.0


# -- the publishing subprocess ---------------------------------------------------------------


async def publish(count: int) -> None:
    """Offer ``count`` connections on stdout, take the answers on stdin, send until EOF."""
    source = TestPattern(width=640, height=480, fps=30)
    await source.open()
    assert source.video is not None and source.audio is not None
    publishers = [
        Publisher("video", source.video, encoded=True),
        Publisher("audio", source.audio, encoded=True),
    ]
    vp8 = [
        c
        for c in RTCRtpSender.getCapabilities("video").codecs
        if c.mimeType.lower() in ("video/vp8", "video/rtx")
    ]
    pcs = []
    for _ in range(count):
        pc = RTCPeerConnection(configuration())
        for publisher in publishers:
            sender = pc.addTrack(publisher.subscribe())
            if publisher.kind == "video":
                sender._send_keyframe = publisher.request_keyframe
        for transceiver in pc.getTransceivers():
            if transceiver.kind == "video":
                transceiver.setCodecPreferences(vp8)
        gather_on(pc, LOOPBACK)
        await pc.setLocalDescription(await pc.createOffer())
        pcs.append(pc)
    for publisher in publishers:
        publisher.start()
    print(json.dumps({"offers": [pc.localDescription.sdp for pc in pcs]}), flush=True)
    loop = asyncio.get_running_loop()
    answers = json.loads(await loop.run_in_executor(None, sys.stdin.readline))["answers"]
    for pc, sdp in zip(pcs, answers, strict=True):
        await pc.setRemoteDescription(RTCSessionDescription(sdp, "answer"))
    await loop.run_in_executor(None, sys.stdin.read)  # until the parent closes our stdin
    for publisher in publishers:
        await publisher.aclose()
    await asyncio.gather(*(pc.close() for pc in pcs))


# -- the measured side -----------------------------------------------------------------------


def drop_encoded(receiver: Any) -> None:
    """Throw a receiver's encoded frames away where the recorder would take them."""
    decoder_queue: queue.Queue[Any] = receiver._RTCRtpReceiver__decoder_queue
    put = decoder_queue.put

    def dropping(item: Any, block: bool = True, timeout: float | None = None) -> None:
        if item is None:
            put(item, block, timeout)

    decoder_queue.put = dropping  # type: ignore[method-assign]


async def run_once(mode: str, count: int, seconds: float, warmup: float) -> dict[str, float]:
    """One measurement: ``count`` recorded participants in ``mode``."""
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        __file__,
        "--child",
        str(count),
        stdin=asyncio.subprocess.PIPE,
        stdout=asyncio.subprocess.PIPE,
    )
    assert process.stdin is not None and process.stdout is not None
    pcs: list[RTCPeerConnection] = []
    recorders: list[ParticipantRecorder] = []
    with tempfile.TemporaryDirectory(prefix="tavkit-rec-bench-") as directory:
        try:
            async with asyncio.timeout(WAIT):
                offers = json.loads(await process.stdout.readline())["offers"]
            answers = []
            for index, sdp in enumerate(offers):
                pc = RTCPeerConnection(configuration())
                recorder = ParticipantRecorder(
                    Path(directory) / f"p{index}.mkv",
                    user_id=f"p{index}",
                    passthrough=mode != "transcode",
                )

                def on_track(
                    track: MediaStreamTrack, pc: RTCPeerConnection = pc, rec: Any = recorder
                ) -> None:
                    receiver = next(
                        t.receiver for t in pc.getTransceivers() if t.receiver.track is track
                    )
                    if mode == "receive only":
                        drop_encoded(receiver)
                    else:
                        rec.add_receiver(receiver, track)

                pc.on("track", on_track)
                await pc.setRemoteDescription(RTCSessionDescription(sdp, "offer"))
                gather_on(pc, LOOPBACK)
                await pc.setLocalDescription(await pc.createAnswer())
                answers.append(pc.localDescription.sdp)
                pcs.append(pc)
                recorders.append(recorder)
            process.stdin.write((json.dumps({"answers": answers}) + "\n").encode())
            await process.stdin.drain()
            for recorder in recorders:
                await recorder.start()

            def flowing() -> bool:
                connected = all(pc.connectionState == "connected" for pc in pcs)
                recording = all(r.started_at is not None for r in recorders)
                return connected and (recording or mode == "receive only")

            async with asyncio.timeout(WAIT):
                while not flowing():  # noqa: ASYNC110 - the states of several objects
                    await asyncio.sleep(0.1)
            await asyncio.sleep(warmup)
            cpu, began = time.process_time(), time.monotonic()
            await asyncio.sleep(seconds)
            cpu, elapsed = time.process_time() - cpu, time.monotonic() - began
            infos = [await recorder.stop() for recorder in recorders]
            fps = [video_fps(info.path, info.duration) for info in infos]
        finally:
            process.stdin.close()
            await asyncio.gather(*(pc.close() for pc in pcs))
            try:
                await asyncio.wait_for(process.wait(), 20)
            except TimeoutError:
                process.kill()
    if mode != "receive only":
        expected = {"video": mode == "passthrough", "audio": mode == "passthrough"}
        assert all(info.passthrough == expected and info.has_video for info in infos), infos
    return {"cpu": cpu / elapsed / count, "fps": min(fps, default=0.0)}


def video_fps(path: Path, duration: float | None) -> float:
    """Video frames per second of media a recording holds (fewer than 30: frames lost)."""
    if not path.exists() or not duration:
        return 0.0
    with av.open(str(path)) as container:
        frames = sum(1 for p in container.demux(video=0) if p.size)
    return frames / duration


Results = dict[tuple[str, int], list[dict[str, float]]]


async def measure(runs: int, seconds: float, warmup: float) -> Results:
    """Every (mode, count) ``runs`` times, interleaved."""
    results: Results = {}
    for run in range(runs):
        for count in COUNTS:
            for mode in MODES:
                result = await run_once(mode, count, seconds, warmup)
                results.setdefault((mode, count), []).append(result)
                print(
                    f"run {run + 1}: {mode:12} x{count}: "
                    f"{result['cpu'] * 100:5.1f} % of a core per participant, "
                    f"video {result['fps']:.1f} fps recorded",
                    flush=True,
                )
    return results


def report(results: Results, runs: int, seconds: float) -> str:
    """The RESULTS.md section."""
    load_end = os.getloadavg()[0]
    lines = [
        "## Recording: CPU per recorded participant",
        "",
        f"Measured {time.strftime('%Y-%m-%d %H:%M', time.gmtime())} by "
        f"`bench/recording_cpu.py` on {platform.machine()}, {os.cpu_count()} CPUs, "
        f"Python {platform.python_version()}, load average {load_end:.1f} at the end "
        "(other work shared the machine). Loopback only.",
        "",
        "Each participant publishes a 640x480 test pattern at 30 fps plus a 440 Hz tone "
        "(VP8 about 1 Mbit/s, Opus) from a subprocess; the measured process holds only "
        "the receiving peer connections and their recorders, and its CPU time "
        f"(all threads) is taken over {seconds:.0f} s windows. Median of {runs} runs per "
        "cell, modes interleaved. Figures are CPU seconds per second of media per "
        "participant, i.e. the share of one core each recorded participant costs.",
        "",
        "| participants | receive only | passthrough (default) | transcode | "
        "transcode / passthrough | recording alone: transcode / passthrough "
        "| video fps in the files: passthrough, transcode |",
        "| ---: | ---: | ---: | ---: | ---: | ---: | ---: |",
    ]
    for count in COUNTS:
        floor, passthrough, transcode = (
            statistics.median(r["cpu"] for r in results[(mode, count)]) for mode in MODES
        )
        fps_pass, fps_trans = (
            statistics.median(r["fps"] for r in results[(mode, count)]) for mode in MODES[1:]
        )
        alone_pass, alone_trans = passthrough - floor, transcode - floor
        alone = f"{alone_trans / alone_pass:.1f}" if alone_pass > 0.001 else "n/a"
        lines.append(
            f"| {count} | {floor * 100:.1f} % | {passthrough * 100:.1f} % | "
            f"{transcode * 100:.1f} % | {transcode / passthrough:.1f} | {alone} "
            f"| {fps_pass:.1f}, {fps_trans:.1f} |"
        )
    lines += [
        "",
        "*Receive only* is what any recorder pays before it writes a byte (ICE, DTLS-SRTP "
        "decryption, RTCP, the jitter buffer); the recorder's own cost is the difference "
        "to it. Passthrough takes the encoded frames where aiortc would hand them to its "
        "decoder, so nothing is decoded or encoded: it only muxes packets into Matroska. "
        "Transcode is aiortc's decoding plus VP8 (realtime, cpu-used 8) and Opus encoding, "
        "the cost of recording from decoded frames; the server uses it only for codecs "
        "the file cannot hold as received (H.264, G.711). Where transcoding needs more "
        "than the machine's cores, it falls behind and drops frames (fewer fps in the "
        "files), so its CPU figure is then a floor, not the full cost.",
        "",
    ]
    return "\n".join(lines)


def main() -> None:
    """Parse arguments; run the publisher child or the whole benchmark."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--runs", type=int, default=2)
    parser.add_argument("--seconds", type=float, default=8.0)
    parser.add_argument("--warmup", type=float, default=2.0)
    parser.add_argument("--no-write", action="store_true", help="print only")
    parser.add_argument("--child", type=int, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        asyncio.run(publish(args.child))
        return
    results = asyncio.run(measure(args.runs, args.seconds, args.warmup))
    section = report(results, args.runs, args.seconds)
    print(section)
    if not args.no_write:
        write_section("recording_cpu", section)
        print(f"written to {RESULTS}")


if __name__ == "__main__":
    main()
