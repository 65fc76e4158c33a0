"""Recording an SFU room: tavkit's recorder subscribes to Janus, and the files are the mesh's.

A real tavkit server (``--media-mode sfu --recording auto``) in front of the module's
real Janus (``conftest.py``); three Python members publish small test patterns.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import av
import pytest

from tavkit.client.media import TestPattern
from tavkit.server.rooms.service import recorder_id
from tavkit.testing import TavkitServer

from .conftest import RunningJanus
from .test_rooms import FRAMES, WITHIN, inspector, sfu_server, small_pattern

__all__ = ["inspector"]  # the fixture, shared with test_rooms

CALL = 3.0  # seconds recorded once everyone receives everyone


@pytest.fixture
def tavkit_server(janus: RunningJanus, tmp_path: Path) -> Iterator[TavkitServer]:
    """An SFU server that records every session (``recording="auto"``)."""
    with sfu_server(janus, tmp_path, recording="auto") as server:
        yield server


def decoded(path: Path) -> tuple[int, int, float]:
    """(video frames, audio frames, seconds between the first and last frame) PyAV reads."""
    video = audio = 0
    times: list[float] = []
    with av.open(str(path)) as container:
        for frame in container.decode():
            if isinstance(frame, av.VideoFrame):
                video += 1
            elif isinstance(frame, av.AudioFrame):
                audio += 1
            if frame.time is not None:
                times.append(float(frame.time))
    return video, audio, (max(times) - min(times)) if times else 0.0


async def test_an_sfu_room_is_recorded_from_janus_to_playable_files(
    participant: Any, janus: RunningJanus, tavkit_server: TavkitServer, inspector: Any
) -> None:
    """Three members of a recorded SFU room each get a file of their own that decodes
    (video and audio, as long as the call), listed by the recordings API as the mesh's
    are; the recorder is never a member (nobody sees it) and never a mesh link."""
    names = ("alice", "bob", "carol")
    members = [
        await participant(name, host_addresses=[janus.address], source=small_pattern(i))
        for i, name in enumerate(names)
    ]
    room_uuid = members[0].room_uuid
    assert room_uuid is not None
    for member in members:
        for other in names:
            if other != member.user_id:
                await member.wait_for_video_from(other, FRAMES, within=WITHIN)
    started = time.monotonic()
    await asyncio.sleep(CALL)
    for member in members:
        assert sorted(member.members) == sorted(set(names) - {member.user_id})
        room = member.kit._room
        assert room is not None and not room.links  # no mesh link, the recorder's neither
    # In Janus the recorder is a participant that publishes nothing.
    recorder = recorder_id(uuid.UUID(room_uuid))
    assert sorted(await inspector.participants(room_uuid)) == sorted([*names, recorder])
    assert sorted(await inspector.publishers(room_uuid)) == list(names)
    for member in members:
        await member.leave()
    call = time.monotonic() - started

    async with asyncio.timeout(40):
        while True:
            listed = tavkit_server.recordings(room_uuid)
            if len(listed) == len(names) and all(r["status"] == "complete" for r in listed):
                break
            await asyncio.sleep(0.2)
    assert sorted(r["userId"] for r in listed) == list(names)
    data_dir = tavkit_server.settings.data_dir
    for rec in listed:
        path = data_dir / "recordings" / room_uuid / f"{rec['userId']}-1.mkv"
        assert rec["hasVideo"] and rec["hasAudio"] and rec["size"] == path.stat().st_size
        video, audio, seconds = await asyncio.to_thread(decoded, path)
        # Loose bounds (the mesh recorder's test's): a busy machine sends fewer frames.
        assert video > 10 and audio > 20, (rec["userId"], video, audio)
        assert CALL * 0.5 <= seconds <= call + 10, (rec["userId"], seconds, call)


def video_sizes(path: Path) -> set[tuple[int, int]]:
    """The (width, height) of every video frame PyAV decodes from ``path``."""
    with av.open(str(path)) as container:
        return {(f.width, f.height) for f in container.decode(video=0)}


async def test_a_shared_screen_is_not_recorded_and_the_camera_goes_on_being(
    participant: Any, janus: RunningJanus, tavkit_server: TavkitServer
) -> None:
    """A member of a recorded SFU room who shares its (320x180) screen goes on being
    recorded from its (160x120) camera: its publication with the screen starts its next
    file, which holds the camera's frames only, as the mesh recorder never records a
    screen."""
    alice, bob = [
        await participant(name, host_addresses=[janus.address], source=small_pattern(i))
        for i, name in enumerate(("alice", "bob"))
    ]
    room_uuid = alice.room_uuid
    assert room_uuid is not None
    await bob.wait_for_video_from("alice", FRAMES, within=WITHIN)
    screen = TestPattern(width=320, height=180, fps=5, variant=3, audio=False)
    await alice.kit.share_screen(screen)
    await bob.wait_for_screen_from("alice", 5, within=WITHIN)
    await bob.wait_for_video_from("alice", FRAMES, more=True, within=WITHIN)
    await asyncio.sleep(1.0)  # a second of the new file
    for member in (alice, bob):
        await member.leave()

    async with asyncio.timeout(40):
        while True:
            listed = [r for r in tavkit_server.recordings(room_uuid) if r["userId"] == "alice"]
            if len(listed) >= 2 and all(r["status"] == "complete" for r in listed):
                break
            await asyncio.sleep(0.2)
    path = tavkit_server.settings.data_dir / "recordings" / room_uuid / "alice-2.mkv"
    assert await asyncio.to_thread(video_sizes, path) == {(160, 120)}
