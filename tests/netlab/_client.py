"""One call participant for the NAT lab, run inside a site's namespace as a subprocess.

Usage: ``python _client.py '<json options>'`` with ``server``, ``sdkAppId``, ``userId``,
``userSig``, ``roomId``, ``peer`` (the userId to wait for), ``within`` (seconds to
wait for its frames) and ``frames`` (how many video and audio frames count as
arrived). It joins the room with the tavkit Python client, publishing a tiny test
pattern, and waits until ``frames`` frames of each kind came from ``peer`` or
``within`` seconds passed, whichever is first. Then it prints one JSON line::

    {"userId", "arrived", "videoFrames", "audioFrames", "firstVideoMs",
     "iceState", "connectionState", "pair": {"local", "remote", "localAddress",
     "remoteAddress"} | null, "gathered": [candidate types], "received": [candidate
     types], "turn": {"via", "server", "tls"} | null, "rebuilds", "errors"}

``firstVideoMs`` is the time from calling ``start`` to the first decoded video frame.

Optional, for benchmarks: ``earlyDtls: false`` turns off what the client does by
default, :func:`tavkit.client.dtls.retransmit_early` on every peer connection (so a
benchmark can compare with aiortc's own DTLS timer); ``watchGap``
(seconds) keeps watching the peer's video after the report and prints a line,
``{"event": "resumed", "at", "gap"}``, whenever frames come again after a pause of at
least that long (``at`` is ``time.monotonic()`` of the first new frame, within 20 ms;
the clock is the same in every namespace).

The call stays up until stdin closes (so the peer keeps receiving until the test has
both reports), then it hangs up and exits 0. The selected pair is read from aioice's
nominated pair inside aiortc's ICE transport: aiortc has no candidate-pair stats.
``received`` is what came over signaling from the peer (its SDP's and trickled
candidates, seen where the Python client takes a signal in), not what ICE learned
from checks. ``turn`` says how the selected pair's local relay candidate reaches its
TURN server (aioice's ``turn/udp`` or ``turn/tcp``, the server's address, the TLS
version or null); null when that candidate is not a relay one.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import sys
import time
from typing import Any

import tavkit.client.peer as peer_module
from tavkit.client import TAvKit, TestPattern
from tavkit.client.peer import PeerLink
from tavkit.protocol import CandidateData, DescriptionData, SignalData

_LINGER = 60.0  # the longest the call stays up after reporting, if stdin never closes
_WATCH_POLL = 0.02
_WATCH_LINGER = 600.0  # the same while watching: a benchmark runs outages meanwhile


def selected_pair(pc: Any) -> dict[str, Any] | None:
    """The nominated candidate pair of ``pc``'s (bundled) ICE transport, or None."""
    for transceiver in pc.getTransceivers():
        connection = transceiver.receiver.transport.transport._connection
        for pair in connection._nominated.values():
            local, remote = pair.local_candidate, pair.remote_candidate
            return {
                "local": local.type,
                "remote": remote.type,
                "localAddress": f"{local.host}:{local.port}",
                "remoteAddress": f"{remote.host}:{remote.port}",
            }
    return None


def turn_route(pc: Any) -> dict[str, Any] | None:
    """How the nominated pair's local relay candidate reaches its TURN server, or None."""
    for transceiver in pc.getTransceivers():
        connection = transceiver.receiver.transport.transport._connection
        for pair in connection._nominated.values():
            if pair.local_candidate.type != "relay":
                return None
            inner = pair.protocol.transport._TurnTransport__inner_protocol
            peer = inner.transport.get_extra_info("peername")
            tls = inner.transport.get_extra_info("ssl_object")
            return {
                "via": repr(inner),
                "server": f"{peer[0]}:{peer[1]}" if peer else None,
                "tls": tls.version() if tls is not None else None,
            }
    return None


def record_received(into: set[str]) -> None:
    """Add the type of every candidate a signal from any peer carries to ``into``."""
    handle = PeerLink.handle

    def recording(self: PeerLink, data: SignalData) -> None:
        if isinstance(data, DescriptionData):
            into.update(candidate_types(data.description.sdp.splitlines()))
        elif isinstance(data, CandidateData) and data.candidate is not None:
            into.update(candidate_types([data.candidate.candidate]))
        handle(self, data)

    PeerLink.handle = recording  # type: ignore[method-assign]


def aiortc_dtls_timer() -> None:
    """Leave DTLS retransmission to OpenSSL's own timer, as aiortc alone would."""
    peer_module.retransmit_early = lambda pc: None


async def watch_resumes(kit: TAvKit, peer: str, gap: float) -> None:
    """Print a line each time ``peer``'s video frames come again after ``gap`` s without."""
    count, last = -1, time.monotonic()
    while True:
        stats = kit.peers_seen.get(peer)
        frames = stats.video_frames if stats is not None else 0
        now = time.monotonic()
        if frames != count:
            if count >= 0 and now - last >= gap:
                print(json.dumps({"event": "resumed", "at": now, "gap": now - last}), flush=True)
            count, last = frames, now
        await asyncio.sleep(_WATCH_POLL)


def candidate_types(lines: list[str]) -> set[str]:
    """The ``typ`` of each candidate line (``a=candidate:...`` or ``candidate:...``)."""
    return {
        line.split(" typ ")[1].split()[0]
        for line in lines
        if line.removeprefix("a=").startswith("candidate:") and " typ " in line
    }


def gathered(pc: Any) -> list[str]:
    """The types of the local candidates ``pc`` offered (each once, sorted)."""
    description = pc.localDescription
    if description is None:
        return []
    return sorted(candidate_types(description.sdp.splitlines()))


async def main(options: dict[str, Any]) -> dict[str, Any]:
    """Join, wait for the peer's frames (bounded), report; keep the call until stdin closes."""
    peer, want, within = options["peer"], int(options["frames"]), float(options["within"])
    pattern = TestPattern(width=160, height=120, fps=15)
    kit = TAvKit(options["server"], source=pattern, video_bitrate=150_000, reporting=False)
    started = time.monotonic()
    first_video: float | None = None
    received: set[str] = set()
    record_received(received)
    if options.get("earlyDtls") is False:
        aiortc_dtls_timer()
    async with kit:
        await kit.start(
            sdk_app_id=int(options["sdkAppId"]),
            user_id=options["userId"],
            user_sig=options["userSig"],
            room_id=int(options["roomId"]),
        )
        deadline = started + within
        while time.monotonic() < deadline:
            stats = kit.peers_seen.get(peer)
            if stats is not None and stats.video_frames and first_video is None:
                first_video = time.monotonic()
            if stats is not None and min(stats.video_frames, stats.audio_frames) >= want:
                break
            await asyncio.sleep(0.05)
        stats = kit.peers_seen.get(peer)
        link = kit._room.links.get(peer) if kit._room is not None else None  # no public pc
        pc = link.pc if link is not None else None
        report = {
            "userId": options["userId"],
            "arrived": stats is not None and min(stats.video_frames, stats.audio_frames) >= want,
            "videoFrames": stats.video_frames if stats else 0,
            "audioFrames": stats.audio_frames if stats else 0,
            "firstVideoMs": round((first_video - started) * 1000) if first_video else None,
            "iceState": pc.iceConnectionState if pc is not None else None,
            "connectionState": pc.connectionState if pc is not None else None,
            "pair": selected_pair(pc) if pc is not None else None,
            "gathered": gathered(pc) if pc is not None else [],
            "received": sorted(received),
            "turn": turn_route(pc) if pc is not None else None,
            "rebuilds": stats.rebuilds if stats else 0,
            "errors": kit.errors,
        }
        print(json.dumps(report), flush=True)
        watch = None
        if options.get("watchGap"):
            watch = asyncio.create_task(watch_resumes(kit, peer, float(options["watchGap"])))
        reader = asyncio.StreamReader()
        loop = asyncio.get_running_loop()
        await loop.connect_read_pipe(lambda: asyncio.StreamReaderProtocol(reader), sys.stdin)
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(_LINGER if watch is None else _WATCH_LINGER):
                await reader.read()
        if watch is not None:
            watch.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await watch
    return report


if __name__ == "__main__":
    asyncio.run(main(json.loads(sys.argv[1])))
