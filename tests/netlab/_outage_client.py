"""A call participant that keeps a timeline, for the lab's outage and network-switch tests.

Usage: ``python _outage_client.py '<json options>'`` with ``server``, ``sdkAppId``,
``userId``, ``userSig``, ``roomId``, ``peer`` and ``within``. It joins with the tavkit
Python client (a small test pattern), waits up to ``within`` seconds for ``peer``'s
video and audio, and prints a first JSON line ``{"ready": bool, "at": unix time}``.

From then on it records, with wall-clock times (the test's clock is the same one),
every listener event (``on_user_connection``, ``on_user_leave``, ``on_user_enter``,
``on_error``) and every change of the count of video frames decoded from ``peer``.
Each line on stdin asks for a report, one JSON line::

    {"events": [[t, name, args...]], "video": [[t, frames]], "resumes": int,
     "rebuilds": int, "closed": bool, "roomUuid": str | null, "errors": [...]}

and when stdin closes it prints a last one, hangs up and exits. ``resumes`` is the
most signaling resumes any one membership had (a rejoin starts a new membership).
"""

from __future__ import annotations

import asyncio
import json
import logging
import sys
import time
from typing import Any

from tavkit.client import Listener, TAvKit, TestPattern


class Timeline(Listener):
    """Every listener event, with the wall-clock time it arrived."""

    def __init__(self) -> None:
        self.events: list[list[Any]] = []

    def _add(self, name: str, *args: Any) -> None:
        self.events.append([time.time(), name, *args])

    def on_user_enter(self, user_id: str) -> None:
        self._add("on_user_enter", user_id)

    def on_user_leave(self, user_id: str, reason: str) -> None:
        self._add("on_user_leave", user_id, reason)

    def on_user_connection(self, user_id: str, status: str) -> None:
        self._add("on_user_connection", user_id, status)

    def on_error(self, error: dict[str, Any]) -> None:
        self._add("on_error", error.get("module"), error.get("errorCode"))


async def main(options: dict[str, Any]) -> None:
    """Join, report readiness, keep the timeline until stdin closes, report it."""
    peer, within = options["peer"], float(options["within"])
    timeline = Timeline()
    kit = TAvKit(
        options["server"],
        source=TestPattern(width=160, height=120, fps=15),
        video_bitrate=150_000,
        reporting=False,
    )
    video: list[list[float]] = []
    resumes = 0
    async with kit:
        await kit.start(
            sdk_app_id=int(options["sdkAppId"]),
            user_id=options["userId"],
            user_sig=options["userSig"],
            room_id=int(options["roomId"]),
            listener=timeline,
        )
        deadline = time.monotonic() + within
        ready = False
        while time.monotonic() < deadline and not ready:
            stats = kit.peers_seen.get(peer)
            ready = stats is not None and min(stats.video_frames, stats.audio_frames) >= 10
            await asyncio.sleep(0.05)
        print(json.dumps({"ready": ready, "at": time.time()}), flush=True)

        loop = asyncio.get_running_loop()
        reader = asyncio.StreamReader()
        await loop.connect_read_pipe(lambda: asyncio.StreamReaderProtocol(reader), sys.stdin)

        async def sample() -> None:
            nonlocal resumes
            while True:
                stats = kit.peers_seen.get(peer)
                frames = stats.video_frames if stats is not None else 0
                if not video or video[-1][1] != frames:
                    video.append([time.time(), frames])
                resumes = max(resumes, kit.resumes)
                await asyncio.sleep(0.1)

        def report() -> None:
            stats = kit.peers_seen.get(peer)
            line = {
                "events": timeline.events,
                "video": video,
                "resumes": resumes,
                "rebuilds": stats.rebuilds if stats is not None else 0,
                "closed": kit.closed,
                "roomUuid": kit.room_uuid,
                "errors": kit.errors,
            }
            print(json.dumps(line), flush=True)

        sampler = asyncio.create_task(sample())
        while await reader.readline():
            report()
        sampler.cancel()
        report()


if __name__ == "__main__":
    # The kit's own account of what it did goes to stderr, which the test shows on failure.
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
    logging.getLogger("httpx").setLevel(logging.WARNING)
    logging.getLogger("tavkit.client.peer").setLevel(logging.DEBUG)
    logging.getLogger("aioice").setLevel(logging.WARNING)
    logging.getLogger("aiortc").setLevel(logging.WARNING)
    asyncio.run(main(json.loads(sys.argv[1])))
