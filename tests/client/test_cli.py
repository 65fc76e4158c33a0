"""``tavkit call`` run as a user runs it: a subprocess, its exit status and its JSON summary."""

from __future__ import annotations

import asyncio
import json
import secrets
import signal
import sys
from typing import Any

from ._util import enter, frames_from, make_kit, receiving, until

CLI_TIMEOUT = 90.0


class CliRun:
    """``python -m tavkit ARGS`` as a subprocess, stopped by the test as a user would."""

    def __init__(self, process: asyncio.subprocess.Process) -> None:
        self.process = process

    @classmethod
    async def start(cls, *args: str) -> CliRun:
        """Launch the command with stdout and stderr captured."""
        process = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "tavkit",
            *args,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
        )
        return cls(process)

    def interrupt(self) -> None:
        """Press Ctrl-C (SIGINT)."""
        self.process.send_signal(signal.SIGINT)

    async def finish(self) -> tuple[int, dict[str, Any] | None, str]:
        """Wait for the exit; (status, the JSON summary on stdout or None, stderr)."""
        try:
            async with asyncio.timeout(CLI_TIMEOUT):
                out, err = await self.process.communicate()
        except TimeoutError:
            self.process.kill()
            await self.process.wait()
            raise
        text = out.decode()
        assert self.process.returncode is not None
        return self.process.returncode, json.loads(text) if text.strip() else None, err.decode()


async def _tavkit(*args: str) -> tuple[int, dict[str, Any] | None, str]:
    """Run ``python -m tavkit ARGS`` to its end."""
    return await (await CliRun.start(*args)).finish()


async def test_call_json_summary_counts_the_peers_media(sqlite_server_factory: Any) -> None:
    """``tavkit call --json``, stopped with Ctrl-C mid-call, sums up the media on stdout."""
    server = sqlite_server_factory()
    async with make_kit(server.url) as bob:
        await enter(bob, server, "bob", 401)
        room_uuid = bob.room_uuid
        assert room_uuid is not None
        run = await CliRun.start(
            "call",
            "--server",
            server.url,
            "--sdk-app-id",
            str(server.app_id),
            "--room-id",
            "401",
            "--user-id",
            "cli",
            "--key",
            server.key,
            "--duration",
            "60",
            "--json",
            "--host-address",
            "127.0.0.1",
        )
        try:
            await until(receiving(bob, "cli", video=10, audio=10), "bob decodes the CLI", 60)
            seen = frames_from(bob, "cli")[0]
            await until(lambda: frames_from(bob, "cli")[0] > seen + 15, "media keeps flowing")
        finally:
            run.interrupt()
        status, summary, stderr = await run.finish()
        await until(lambda: bob.members == [], "the CLI hung up")

    assert status == 0, stderr
    assert summary is not None
    assert summary["roomUuid"] == room_uuid  # read while bob was in: a closed kit has none
    assert summary["errors"] == []
    assert list(summary["peers"]) == ["bob"]
    peer = summary["peers"]["bob"]
    assert peer["videoFrames"] > 0 and peer["audioFrames"] > 0
    assert isinstance(peer["firstFrameMs"], float) and peer["firstFrameMs"] > 0


async def test_call_json_summary_names_the_session_after_a_timed_call(
    sqlite_server_factory: Any,
) -> None:
    """``tavkit call --json --duration`` ending by itself prints the session's UUID, not null."""
    import httpx

    server = sqlite_server_factory()
    status, summary, stderr = await _tavkit(
        "call",
        "--server",
        server.url,
        "--sdk-app-id",
        str(server.app_id),
        "--room-id",
        "403",
        "--user-id",
        "cli",
        "--key",
        server.key,
        "--duration",
        "0.5",
        "--json",
        "--host-address",
        "127.0.0.1",
    )
    assert status == 0, stderr
    assert summary is not None
    async with httpx.AsyncClient(base_url=server.url, timeout=30) as http:
        answer = await http.get("/v1/admin/sessions", headers=server.admin_headers())
    assert answer.status_code == 200, answer.text
    [session] = [s for s in answer.json()["sessions"] if s["roomId"] == 403]
    assert summary["roomUuid"] == session["roomUuid"]


async def test_call_with_a_wrong_key_exits_1_with_the_error(sqlite_server_factory: Any) -> None:
    """A userSig minted with the wrong key: exit status 1 and avkit 70346 in the summary."""
    server = sqlite_server_factory()
    status, summary, stderr = await _tavkit(
        "call",
        "--server",
        server.url,
        "--sdk-app-id",
        str(server.app_id),
        "--room-id",
        "402",
        "--user-id",
        "cli",
        "--key",
        secrets.token_hex(32),
        "--json",
        "--host-address",
        "127.0.0.1",
    )
    assert status == 1
    assert summary is not None and summary["roomUuid"] is None and summary["peers"] == {}
    assert [(e["module"], e["errorCode"]) for e in summary["errors"]] == [("avkit", 70346)]
    assert "70346" in stderr


async def test_call_needs_exactly_one_credential() -> None:
    """Neither --user-sig nor --key (or both) is a usage error: exit status 2."""
    status, summary, stderr = await _tavkit(
        "call", "--sdk-app-id", "1400000001", "--room-id", "1", "--user-id", "u"
    )
    assert status == 2 and summary is None
    assert "--user-sig" in stderr


async def test_call_joins_a_string_room_with_str_room_id(sqlite_server_factory: Any) -> None:
    """``--str-room-id 403`` meets a client in string room "403", not one in room 403."""
    server = sqlite_server_factory()
    async with make_kit(server.url) as bob, make_kit(server.url) as carol:
        await enter(bob, server, "bob", None, str_room_id="403")
        await enter(carol, server, "carol", 403)
        run = await CliRun.start(
            "call",
            "--server",
            server.url,
            "--sdk-app-id",
            str(server.app_id),
            "--str-room-id",
            "403",
            "--user-id",
            "cli",
            "--key",
            server.key,
            "--duration",
            "60",
            "--json",
            "--host-address",
            "127.0.0.1",
        )
        try:
            await until(receiving(bob, "cli", video=5, audio=5), "bob decodes the CLI", 60)
            assert carol.members == [] and bob.members == ["cli"]
            assert bob.room_uuid != carol.room_uuid
        finally:
            run.interrupt()
        status, summary, stderr = await run.finish()
    assert status == 0, stderr
    assert summary is not None and list(summary["peers"]) == ["bob"]


async def test_call_needs_exactly_one_room() -> None:
    """Both --room-id and --str-room-id, or neither (without --invite), or a string room
    to ring in, is a usage error: exit status 2."""
    common = ("call", "--sdk-app-id", "1400000001", "--user-id", "u", "--key", "k" * 64)
    for rooms in ((), ("--room-id", "1", "--str-room-id", "1")):
        status, summary, stderr = await _tavkit(*common, *rooms)
        assert status == 2 and summary is None
        assert "--str-room-id" in stderr
    # Calls ring in numeric rooms only (protocol section 7): a string room is refused here.
    status, summary, stderr = await _tavkit(*common, "--invite", "bob", "--str-room-id", "x")
    assert status == 2 and summary is None
    assert "numeric room" in stderr


async def test_listen_accept_answers_a_call_and_leaves_when_the_caller_hangs_up(
    sqlite_server_factory: Any,
) -> None:
    """``tavkit listen --accept`` answers, sends media, and exits 0 when the caller hangs up."""
    server = sqlite_server_factory()
    run = await CliRun.start(
        "listen",
        "--server",
        server.url,
        "--sdk-app-id",
        str(server.app_id),
        "--user-id",
        "bob",
        "--key",
        server.key,
        "--accept",
        "--json",
        "--host-address",
        "127.0.0.1",
    )
    async with make_kit(server.url) as alice:
        options = {"sdk_app_id": server.app_id, "user_id": "alice", "user_sig": server.sig("alice")}
        handle = await alice.call(callees=["bob"], **options)
        try:
            assert await asyncio.wait_for(handle.result(), CLI_TIMEOUT) == "accepted"
            await until(receiving(alice, "bob", video=10, audio=10), "alice decodes the CLI", 60)
            await handle.hangup()
            status, summary, stderr = await run.finish()
        finally:
            await handle.aclose()
    assert status == 0, stderr
    assert summary is not None and summary["call"]["callId"] == handle.call_id
    assert list(summary["peers"]) == ["alice"]


async def test_call_invite_exits_1_when_the_callee_declines(sqlite_server_factory: Any) -> None:
    """``tavkit call --invite bob`` rings Bob; his decline ends it with status 1 and the record."""
    server = sqlite_server_factory()
    async with make_kit(server.url) as bob:
        options = {"sdk_app_id": server.app_id, "user_id": "bob", "user_sig": server.sig("bob")}
        invitations = bob.listen(**options)
        run = await CliRun.start(
            "call",
            "--server",
            server.url,
            "--sdk-app-id",
            str(server.app_id),
            "--user-id",
            "cli",
            "--key",
            server.key,
            "--invite",
            "bob",
            "--media",
            "audio",
            "--json",
            "--host-address",
            "127.0.0.1",
        )
        invitation = await asyncio.wait_for(anext(invitations), CLI_TIMEOUT)
        assert invitation.caller == "cli" and invitation.call.media == "audio"
        await invitation.decline()
        await invitations.aclose()
        status, summary, stderr = await run.finish()
    assert status == 1, stderr
    assert summary is not None and summary["call"]["state"] == "declined", stderr
    assert "not answered" in stderr
