"""REST for recordings: who may list and download, byte ranges, 14007/14008, admin delete.

Members read their own recordings only (another member's file is 403, server 10005);
the admin reads them all.

The sessions are real (entered over REST); each recording row and its file are put
in place the way the recorder leaves a finished one, so these tests need no media
and run on both databases. The recorder itself is tested in ``test_recorder.py``.
"""

from __future__ import annotations

import hashlib
import os
import time
import uuid
from pathlib import Path
from typing import TYPE_CHECKING

import httpx
import pytest
from typer.testing import CliRunner

from tavkit.errors import ServerCode
from tavkit.server.cli import server_app
from tavkit.server.recording import rows
from tavkit.server.recording.service import recording_path
from tavkit.server.settings import Settings
from tavkit.server.store.db import Store
from tavkit.server.store.recording_models import RecordingRow

from ._util import expect_error

if TYPE_CHECKING:
    from conftest import RunningServer

CONTENT = os.urandom(5000)


async def recorded_session(
    client: httpx.AsyncClient, server: RunningServer, room: int
) -> tuple[str, str, Path]:
    """A session alice entered, with one finished recording of hers: (uuid, id, file)."""
    entered = await client.post(f"/v1/rooms/{room}/enter", headers=server.headers("alice"))
    assert entered.status_code == 200, entered.text
    room_uuid = uuid.UUID(entered.json()["roomUuid"])
    rec_id, path = await add_recording(server, room_uuid, "alice")
    return str(room_uuid), rec_id, path


async def add_recording(
    server: RunningServer, room_uuid: uuid.UUID, user_id: str
) -> tuple[str, Path]:
    """A finished recording of ``user_id`` in the session, file and row: (id, file)."""
    relative = recording_path(room_uuid, user_id, 1)
    path = server.settings.data_dir / relative
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(CONTENT)
    now = time.time()
    rec = RecordingRow(
        id=uuid.uuid4(),
        session_id=room_uuid,
        user_id=user_id,
        stint=1,
        path=relative.as_posix(),
        started_at=now - 3.0,
        ended_at=now,
        duration=3.0,
        size=len(CONTENT),
        sha256=hashlib.sha256(CONTENT).hexdigest(),
        status="complete",
        has_video=True,
        has_audio=True,
        stop_reason="left",
    )
    store = Store.open(
        server.settings.effective_database_url, schema=server.settings.database_schema
    )
    try:
        await rows.insert(store, rec)
    finally:
        await store.close()
    return str(rec.id), path


async def test_members_and_the_admin_list_recordings(client, server):
    """A member (ever) and the admin list the session's recordings; nobody else may."""
    room_uuid, rec_id, _path = await recorded_session(client, server, 401)
    url = f"/v1/sessions/{room_uuid}/recordings"
    for who in (server.headers("alice"), server.admin_headers()):
        response = await client.get(url, headers=who)
        assert response.status_code == 200, response.text
        body = response.json()
        assert body["roomUuid"] == room_uuid and body["recording"] is False
        [rec] = body["recordings"]
        assert rec["id"] == rec_id and rec["userId"] == "alice"
        assert rec["status"] == "complete" and rec["size"] == len(CONTENT)
        assert rec["sha256"] == hashlib.sha256(CONTENT).hexdigest()
        assert rec["duration"] == 3.0 and rec["hasVideo"] and rec["hasAudio"]
        assert rec["endedAt"] - rec["startedAt"] == 3.0
        assert rec["stopReason"] == "left"
    stranger = await client.get(url, headers=server.headers("carol"))
    expect_error(stranger, ServerCode.UNAUTHORISED)


async def test_members_see_only_their_own_recordings(client, server):
    """Alice and bob were in the call: each lists and downloads only their own; the admin all."""
    room_uuid, alices, _path = await recorded_session(client, server, 406)
    entered = await client.post("/v1/rooms/406/enter", headers=server.headers("bob"))
    assert entered.status_code == 200, entered.text
    bobs, _bob_path = await add_recording(server, uuid.UUID(room_uuid), "bob")
    url = f"/v1/sessions/{room_uuid}/recordings"
    for user, own in (("alice", alices), ("bob", bobs)):
        listed = await client.get(url, headers=server.headers(user))
        assert [r["id"] for r in listed.json()["recordings"]] == [own], user
        mine = await client.get(f"{url}/{own}", headers=server.headers(user))
        assert mine.status_code == 200 and mine.content == CONTENT
    theirs = await client.get(f"{url}/{bobs}", headers=server.headers("alice"))
    message = expect_error(theirs, ServerCode.UNAUTHORISED, status=403)
    assert "bob" in message
    ranged = await client.get(
        f"{url}/{alices}", headers={**server.headers("bob"), "Range": "bytes=0-9"}
    )
    expect_error(ranged, ServerCode.UNAUTHORISED, status=403)
    everything = await client.get(url, headers=server.admin_headers())
    assert sorted(r["userId"] for r in everything.json()["recordings"]) == ["alice", "bob"]
    for rec_id in (alices, bobs):
        download = await client.get(f"{url}/{rec_id}", headers=server.admin_headers())
        assert download.status_code == 200 and download.content == CONTENT


async def test_the_openapi_documents_the_recording_refusals(client):
    """/openapi.json names 403 on downloads and 507 (disk floor) on start, seed-shaped."""
    spec = (await client.get("/openapi.json")).json()
    download = spec["paths"]["/v1/sessions/{uuid}/recordings/{id}"]["get"]["responses"]
    start = spec["paths"]["/v1/admin/rooms/{roomId}/recording/start"]["post"]["responses"]
    for response in (download["403"], start["507"]):
        schema = response["content"]["application/json"]["schema"]
        assert schema["$ref"].endswith("/ErrorBody")
    assert "own" in download["403"]["description"]
    assert "floor" in start["507"]["description"]
    quota = spec["paths"]["/v1/admin/recording/quota"]["get"]
    assert quota["tags"] == ["admin"]


async def test_unknown_sessions_are_14007(client, server):
    """Listing the recordings of an unknown session is 14007; a malformed UUID is 10004."""
    unknown = await client.get(
        f"/v1/sessions/{uuid.uuid4()}/recordings", headers=server.admin_headers()
    )
    expect_error(unknown, ServerCode.SESSION_NOT_FOUND)
    malformed = await client.get("/v1/sessions/nope/recordings", headers=server.admin_headers())
    expect_error(malformed, ServerCode.INVALID_PARAMETER)


async def test_download_serves_the_file_with_its_sha256_as_etag(client, server):
    """A member downloads the whole file as video/x-matroska; the ETag is its SHA-256."""
    room_uuid, rec_id, _path = await recorded_session(client, server, 402)
    url = f"/v1/sessions/{room_uuid}/recordings/{rec_id}"
    response = await client.get(url, headers=server.headers("alice"))
    assert response.status_code == 200
    assert response.content == CONTENT
    assert response.headers["content-type"] == "video/x-matroska"
    assert response.headers["etag"] == f'"{hashlib.sha256(CONTENT).hexdigest()}"'
    assert response.headers["accept-ranges"] == "bytes"
    stranger = await client.get(url, headers=server.headers("carol"))
    expect_error(stranger, ServerCode.UNAUTHORISED)
    admin = await client.get(url, headers=server.admin_headers())
    assert admin.status_code == 200 and admin.content == CONTENT


async def test_byte_ranges(client, server):
    """Range: a-b and suffix ranges are 206 with Content-Range; an unsatisfiable one is 416."""
    room_uuid, rec_id, _path = await recorded_session(client, server, 403)
    url = f"/v1/sessions/{room_uuid}/recordings/{rec_id}"
    headers = server.headers("alice")
    size = len(CONTENT)

    first = await client.get(url, headers={**headers, "Range": "bytes=0-99"})
    assert first.status_code == 206
    assert first.content == CONTENT[:100]
    assert first.headers["content-range"] == f"bytes 0-99/{size}"

    suffix = await client.get(url, headers={**headers, "Range": "bytes=-10"})
    assert suffix.status_code == 206
    assert suffix.content == CONTENT[-10:]
    assert suffix.headers["content-range"] == f"bytes {size - 10}-{size - 1}/{size}"

    tail = await client.get(url, headers={**headers, "Range": f"bytes={size - 5}-"})
    assert tail.status_code == 206 and tail.content == CONTENT[-5:]

    for bad in (f"bytes={size}-", "bytes=50-10", "bytes=-0", "items=0-1", "bytes=x-y"):
        refused = await client.get(url, headers={**headers, "Range": bad})
        expect_error(refused, ServerCode.INVALID_PARAMETER, status=416)
        assert refused.headers["content-range"] == f"bytes */{size}", bad


async def test_unknown_or_vanished_files_are_14008(client, server):
    """An unknown or malformed id is 14008, and so is a file deleted behind the server's back."""
    room_uuid, rec_id, path = await recorded_session(client, server, 404)
    base = f"/v1/sessions/{room_uuid}/recordings"
    headers = server.headers("alice")
    for unknown in (str(uuid.uuid4()), "not-a-uuid"):
        response = await client.get(f"{base}/{unknown}", headers=headers)
        expect_error(response, ServerCode.RECORDING_FAILED)
    path.unlink()
    gone = await client.get(f"{base}/{rec_id}", headers=headers)
    expect_error(gone, ServerCode.RECORDING_FAILED)


async def test_the_admin_deletes_a_recording(client, server):
    """Only the admin deletes; file and row go; deleting again is 14008."""
    room_uuid, rec_id, path = await recorded_session(client, server, 405)
    url = f"/v1/sessions/{room_uuid}/recordings/{rec_id}"
    member = await client.delete(url, headers=server.headers("alice"))
    expect_error(member, ServerCode.UNAUTHORISED)
    assert path.exists()

    deleted = await client.delete(url, headers=server.admin_headers())
    assert deleted.status_code == 200
    assert deleted.json() == {"id": rec_id, "deleted": True}
    assert not path.exists()
    listed = await client.get(
        f"/v1/sessions/{room_uuid}/recordings", headers=server.headers("alice")
    )
    assert listed.json()["recordings"] == []
    again = await client.delete(url, headers=server.admin_headers())
    expect_error(again, ServerCode.RECORDING_FAILED)


def test_the_recording_setting_is_read_and_checked() -> None:
    """TAVKIT_RECORDING sets the default policy (off unless set); an unknown one is refused."""
    assert Settings().recording == "off"
    assert Settings.from_env({"TAVKIT_RECORDING": "on-demand"}).recording == "on-demand"
    with pytest.raises(ValueError, match="TAVKIT_RECORDING"):
        Settings.from_env({"TAVKIT_RECORDING": "always"})


def test_serve_refuses_an_unknown_recording_policy(tmp_path: Path) -> None:
    """tavkit serve --recording sometimes exits 2 with a message naming the option."""
    result = CliRunner().invoke(
        server_app, ["serve", "--recording", "sometimes", "--data-dir", str(tmp_path)]
    )
    assert result.exit_code == 2
    assert "recording" in result.output
