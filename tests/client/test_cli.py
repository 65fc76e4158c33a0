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
