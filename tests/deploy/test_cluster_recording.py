"""Recording with replicas: the replica recording a call is killed, another one goes on.

Two replicas behind HAProxy record every session (``--recording auto``) into one data
directory. Exactly one of them holds the session's recording lease (it logs "recording
lease taken"); SIGKILL it mid-call and the other replica, once the lease has lapsed,
closes the dead one's files as partial and records every member again in a new file.
"""

from __future__ import annotations

import asyncio
import io
import signal
from pathlib import Path
from typing import Any

import av
import httpx
import pytest
from client._util import enter, make_kit, receiving, until
from server._util import eventually

from tavkit.auth import gen_user_sig

from ._cluster import APP_ID, Cluster, ClusterApp, HAProxy, Replica

pytestmark = pytest.mark.parametrize("database", ["postgres"], indirect=True)

ADMIN_KEY = "clusteradminkey0123456789abcdef"
TAKEN = "recording lease taken"


def decoded(content: bytes) -> tuple[int, int]:
    """(video frames, audio frames) PyAV decodes from a Matroska file's bytes."""
    video = audio = 0
    with av.open(io.BytesIO(content)) as container:
        for packet in container.demux():
            try:
                frames = packet.decode()
            except av.error.InvalidDataError:
                continue  # the last packet of a file cut by a crash
            for frame in frames:
                if isinstance(frame, av.VideoFrame):
                    video += 1
                elif isinstance(frame, av.AudioFrame):
                    audio += 1
    return video, audio


def holders(replicas: list[Replica]) -> list[Replica]:
    """The replicas that have taken a recording lease so far."""
    return [r for r in replicas if TAKEN in r.log.read_text(errors="replace")]


async def test_a_killed_recording_replica_is_taken_over_and_every_segment_plays(
    cluster: Cluster, tmp_path: Path
) -> None:
    """SIGKILL the replica recording a call: the other takes the lease over, writes a new
    file for each member, and all four files are listed by REST and decode."""
    cluster.env["TAVKIT_ADMIN_KEY"] = ADMIN_KEY
    replicas = cluster.start(2, "--recording", "auto")
    proxy = HAProxy(tmp_path, replicas)
    server: Any = ClusterApp(cluster)
    admin = {
        "X-TAvKit-SdkAppId": str(APP_ID),
        "X-TAvKit-UserId": "administrator",
        "X-TAvKit-UserSig": gen_user_sig(APP_ID, ADMIN_KEY, "administrator", 3600),
    }
    try:
        async with make_kit(proxy.url) as alice, make_kit(proxy.url) as bob:
            await enter(alice, server, "alice", 711)
            await enter(bob, server, "bob", 711)
            await until(receiving(bob, "alice"), "bob decodes alice")
            await until(receiving(alice, "bob"), "alice decodes bob")
            room_uuid = str(alice.room_uuid)
            folder = tmp_path / "data" / "recordings" / room_uuid
            await until(lambda: len(list(folder.glob("*-1.mkv"))) == 2, "both files are written")
            [holder] = holders(replicas)
            [survivor] = [r for r in replicas if r is not holder]
            await asyncio.sleep(2.0)  # some media in the first files

            await asyncio.to_thread(holder.stop, signal.SIGKILL)
            second = [folder / "alice-2.mkv", folder / "bob-2.mkv"]
            await until(
                lambda: all(path.exists() for path in second),
                "the surviving replica records both members again",
                within=60,
            )
            assert holders([survivor]) == [survivor], survivor.log.read_text()
            sizes = [path.stat().st_size for path in second]
            await until(
                lambda: all(p.stat().st_size > s for p, s in zip(second, sizes, strict=True)),
                "the new files grow",
            )
            await asyncio.sleep(2.0)
            await alice.hangup()
            await bob.hangup()

        async with httpx.AsyncClient(base_url=proxy.url, timeout=30) as http:

            async def listed() -> list[dict[str, Any]]:
                response = await http.get(f"/v1/sessions/{room_uuid}/recordings", headers=admin)
                assert response.status_code == 200, response.text
                found: list[dict[str, Any]] = response.json()["recordings"]
                return found

            found = await eventually(lambda: _all_closed(listed), within=40)
            assert sorted((r["userId"], r["status"], r["stopReason"]) for r in found) == [
                ("alice", "complete", "left"),
                ("alice", "partial", "replica-lost"),
                ("bob", "complete", "left"),
                ("bob", "partial", "replica-lost"),
            ]
            for rec in found:
                response = await http.get(
                    f"/v1/sessions/{room_uuid}/recordings/{rec['id']}", headers=admin
                )
                assert response.status_code == 200, response.text
                assert len(response.content) == rec["size"]
                video, audio = await asyncio.to_thread(decoded, response.content)
                assert video > 5 and audio > 10, (rec, video, audio)
    finally:
        proxy.close()


async def _all_closed(listed: Any) -> list[dict[str, Any]] | None:
    """The four recordings once every one of them is closed, else None."""
    found: list[dict[str, Any]] = await listed()
    done = len(found) == 4 and all(r["status"] != "recording" for r in found)
    return found if done else None
