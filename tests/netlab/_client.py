"""One call participant for the NAT lab, run inside a site's namespace as a subprocess.

Usage: ``python _client.py '<json options>'`` with ``server``, ``sdkAppId``, ``userId``,
``userSig``, ``roomId``, ``peer`` (the userId to wait for), ``within`` (seconds to
wait for its frames) and ``frames`` (how many video and audio frames count as
arrived). It joins the room with the tavkit Python client, publishing a tiny test
pattern, and waits until ``frames`` frames of each kind came from ``peer`` or
``within`` seconds passed, whichever is first. Then it prints one JSON line::

    {"userId", "arrived", "videoFrames", "audioFrames", "firstVideoMs",
     "iceState", "connectionState", "pair": {"local", "remote", "localAddress",
     "remoteAddress"} | null, "gathered": [candidate types], "rebuilds", "errors"}

``firstVideoMs`` is the time from calling ``start`` to the first decoded video frame.
The call stays up until stdin closes (so the peer keeps receiving until the test has
both reports), then it hangs up and exits 0. The selected pair is read from aioice's
nominated pair inside aiortc's ICE transport: aiortc has no candidate-pair stats.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import sys
import time
from typing import Any

from tavkit.client import TAvKit, TestPattern

_LINGER = 60.0  # the longest the call stays up after reporting, if stdin never closes


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


def gathered(pc: Any) -> list[str]:
    """The types of the local candidates ``pc`` offered (each once, sorted)."""
    description = pc.localDescription
    if description is None:
        return []
    return sorted(
        {
            line.split(" typ ")[1].split()[0]
            for line in description.sdp.splitlines()
            if line.startswith("a=candidate:") and " typ " in line
        }
    )


async def main(options: dict[str, Any]) -> dict[str, Any]:
    """Join, wait for the peer's frames (bounded), report; keep the call until stdin closes."""
    peer, want, within = options["peer"], int(options["frames"]), float(options["within"])
    pattern = TestPattern(width=160, height=120, fps=15)
    kit = TAvKit(options["server"], source=pattern, video_bitrate=150_000, reporting=False)
    started = time.monotonic()
    first_video: float | None = None
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
            "rebuilds": stats.rebuilds if stats else 0,
            "errors": kit.errors,
        }
        print(json.dumps(report), flush=True)
        reader = asyncio.StreamReader()
        loop = asyncio.get_running_loop()
        await loop.connect_read_pipe(lambda: asyncio.StreamReaderProtocol(reader), sys.stdin)
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(_LINGER):
                await reader.read()
    return report


if __name__ == "__main__":
    asyncio.run(main(json.loads(sys.argv[1])))
