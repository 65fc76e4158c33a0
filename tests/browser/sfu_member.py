"""A Python member of an SFU room, in a process of its own, for ``test_sfu.py``.

Run as ``python sfu_member.py CONFIG_JSON``. It enters the room sending a small test
pattern (and says so in a first JSON line), waits until it has decoded video from
every member in ``expect`` and then until each of those streams has advanced, and
until it sends both audio and video, prints one JSON line (what it decoded at both
moments, the frame rate from each just after, the audio frames decoded from each
at the first moment and after that rate's window, the kinds of the streams it sends over
all its connections, or the error), and stays in the call until its standard input
closes. With a ``privateMapKey`` it enters with that key's privileges (one that may
only send expects no one: it decodes nothing). A process each, so that several members
do not share one interpreter's lock with the test's server and with each other, as
real clients would not.

The SFU starts every stream at its highest layer; this member asks
(``kit.choose_layers``) for the low layer of the ``thumbnails`` members' video (the
pages, which publish three), as a receiver showing them small would, so that
decoding 1280×720 twice over does not starve it on a busy machine.
"""

from __future__ import annotations

import asyncio
import json
import sys
from typing import Any

from tavkit.client import TAvKit, TestPattern
from tavkit.client.connections import sent_streams
from tavkit.protocol import MediaLayer

FRAMES = 10
LAYER: MediaLayer = "low"
"""What this member asks of the thumbnails' video unless its config says ``layer``."""
RATE_WINDOW = 3.0
"""Seconds over which the report measures the frame rate from each member."""


async def decoded(kit: TAvKit, others: list[str]) -> dict[str, int]:
    """Video frames decoded so far from each of ``others``."""
    seen = kit.peers_seen
    return {o: seen[o].video_frames if o in seen else 0 for o in others}


async def heard(kit: TAvKit, others: list[str]) -> dict[str, int]:
    """Audio frames decoded so far from each of ``others``."""
    seen = kit.peers_seen
    return {o: seen[o].audio_frames if o in seen else 0 for o in others}


async def uploads(kit: TAvKit) -> list[str]:
    """The kinds of the streams this member sends, over all its connections."""
    return [kind for kind, _ in await sent_streams(kit.connections())]


async def main(config: dict[str, Any]) -> None:
    """Enter, wait for everyone's frames twice, report, stay until stdin closes."""
    others: list[str] = config["expect"]
    report: dict[str, Any] = {"userId": config["userId"]}
    kit = TAvKit(
        config["server"],
        source=TestPattern(width=160, height=120, fps=15, variant=config["variant"]),
        host_addresses=[config["address"]],
    )
    try:
        await kit.start(
            sdk_app_id=config["sdkAppId"],
            user_id=config["userId"],
            user_sig=config["userSig"],
            room_id=config["roomId"],
            private_map_key=config.get("privateMapKey"),
        )
        print(json.dumps({"joined": config["userId"]}), flush=True)
        layer = config.get("layer", LAYER)
        kit.choose_layers({user_id: layer for user_id in config["thumbnails"]})
        try:
            async with asyncio.timeout(config["within"]):
                while others and min((await decoded(kit, others)).values()) < FRAMES:  # noqa: ASYNC110
                    await asyncio.sleep(0.2)
                report["first"] = first = await decoded(kit, others)
                report["heardFirst"] = await heard(kit, others)
                while any(n <= first[o] for o, n in (await decoded(kit, others)).items()):  # noqa: ASYNC110
                    await asyncio.sleep(0.2)
                while not {"audio", "video"} <= set(await uploads(kit)):  # noqa: ASYNC110
                    await asyncio.sleep(0.2)
        except TimeoutError:
            report["error"] = "timed out"
        report["last"] = last = await decoded(kit, others)
        await asyncio.sleep(RATE_WINDOW)
        now = await decoded(kit, others)
        report["heardLast"] = await heard(kit, others)  # 3 s on at least: it must have grown
        report["fps"] = {o: round((now[o] - last[o]) / RATE_WINDOW, 1) for o in others}
        report["uploads"] = await uploads(kit)
        print(json.dumps(report), flush=True)
        await asyncio.to_thread(sys.stdin.read)  # the test closes it when it is done
    finally:
        await kit.aclose()


if __name__ == "__main__":
    asyncio.run(main(json.loads(sys.argv[1])))
