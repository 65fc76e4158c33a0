"""``tavkit loadtest`` against real servers: a clean run, a refused check, a restart mid-run."""

from __future__ import annotations

import asyncio
import json
import os
import re
import signal
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

import httpx
import pytest

from tavkit.auth import gen_user_sig
from tavkit.loadtest import LoadConfig, LoadTest, run_loadtest
from tavkit.protocol import CloseCode

if TYPE_CHECKING:
    from conftest import RunningServer, ServerFactory

APP_ID = 1400000001
KEY = "a1" * 32
WAIT = float(os.environ.get("TAVKIT_TEST_TIMEOUT", "20")) * 3
# Short runs: a heartbeat every 2 s so the RTT has samples, traffic for a few seconds.
FAST = {"heartbeat_interval": 2.0, "heartbeat_timeout": 15.0}


def config_for(url: str, key: str, **options: Any) -> LoadConfig:
    """200 participants in 40 rooms (5 each), ramped quickly, with a short traffic phase."""
    base: dict[str, Any] = {
        "participants": 200,
        "rooms": 40,
        "ramp": 100.0,
        "duration": 2.0,
        "signal_interval": 0.5,
        "messages": 2,
    }
    base.update(options)
    return LoadConfig(url, APP_ID, key, **base)


def assert_clean(report: dict[str, Any]) -> None:
    """A run without trouble: no error, everyone in, consistent, every message delivered."""
    assert report["errors"]["total"] == 0, report["errors"]
    assert report["joined"] == report["participants"]
    assert report["consistency"]["passed"], report["consistency"]
    messages = report["messages"]
    assert messages["supported"], messages
    assert messages["acked"] == messages["sent"] > 0
    assert messages["received"] == messages["expected"] == messages["acked"] * 4
    assert report["signals"]["received"] == report["signals"]["sent"] > 0
    for name in ("join", "heartbeat", "signal", "message"):
        assert report["latencyMs"][name]["count"] > 0, name
    assert report["recovered"] and report["ok"]


class ServeProcess:
    """``tavkit serve`` as a real process on a fixed data dir, restartable on its own port."""

    def __init__(self, data_dir: Path, key: str) -> None:
        self.data_dir = data_dir
        self.key = key
        self.port = 0
        self.process: subprocess.Popen[str] | None = None

    @property
    def url(self) -> str:
        """The URL it serves on (the same across restarts)."""
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> None:
        """Start on ``self.port`` (0 the first time); retry while that port is still taken."""
        for _ in range(20):
            output = self._launch()
            if output is None:
                return
            if "cannot bind" not in output:
                raise AssertionError(output)
            threading.Event().wait(0.5)
        raise AssertionError(f"port {self.port} stayed taken")

    def stop(self) -> None:
        """SIGTERM, as a supervisor restarting the service would."""
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(WAIT)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        self.process = None

    def _launch(self) -> str | None:
        """None once serving; the output if it exited first."""
        clean = {k: v for k, v in os.environ.items() if not k.startswith("TAVKIT_")}
        process = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "tavkit",
                "serve",
                "--port",
                str(self.port),
                "--data-dir",
                str(self.data_dir),
                "--app",
                f"{APP_ID}:{self.key}",
                "--heartbeat-interval",
                str(FAST["heartbeat_interval"]),
                "--heartbeat-timeout",
                str(FAST["heartbeat_timeout"]),
                "--log-level",
                "warning",
            ],
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            env=clean,
        )
        assert process.stdout is not None
        output = []
        for line in process.stdout:
            output.append(line)
            match = re.search(r"tavkit serving on http://127\.0\.0\.1:(\d+)", line)
            if match:
                self.port = int(match.group(1))
                self.process = process
                # Keep draining its output so the server never blocks on a full pipe.
                threading.Thread(target=process.stdout.read, daemon=True).start()
                return None
        process.wait()
        return "".join(output)


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServeProcess]:
    """One ``tavkit serve`` process (SQLite) for the clean runs of this module.

    A separate process, as in production: in the test's own process the server and
    200 simulated participants would share one interpreter lock.
    """
    serve = ServeProcess(tmp_path_factory.mktemp("served") / "data", KEY)
    serve.start()
    try:
        yield serve
    finally:
        serve.stop()


async def test_run_loadtest_holds_200_participants_without_errors(served: ServeProcess):
    """200 participants in 40 rooms: no error, consistent members, every message fanned out."""
    report = await run_loadtest(config_for(served.url, KEY))
    assert_clean(report.to_dict())
    assert report.latency["heartbeat"].count >= 200
    # One server names itself (X-Tavkit-Replica): every enter and socket, every pair on it.
    (name,) = report.replicas["enters"]
    assert report.replicas == {"enters": {name: 200}, "sockets": {name: 200}}
    assert report.latency["signalSameReplica"].count == report.latency["signal"].count
    assert report.latency["messageSameReplica"].count == report.latency["message"].count
    assert report.latency["signalCrossReplica"].count == 0
    assert f"enters per replica: {name} 200" in report.render()


def test_cli_prints_one_json_report_and_exits_0(served: ServeProcess):
    """``tavkit loadtest --json`` prints a JSON report on stdout and exits 0 on a clean run."""
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "tavkit",
            "loadtest",
            "--server",
            served.url,
            "--app",
            f"{APP_ID}:{KEY}",
            "--participants",
            "200",
            "--rooms",
            "40",
            "--ramp",
            "100",
            "--duration",
            "2",
            "--messages",
            "2",
            "--signal-interval",
            "0.5",
            "--json",
        ],
        capture_output=True,
        text=True,
        timeout=WAIT * 2,
    )
    lines = done.stdout.splitlines()
    assert len(lines) == 1, done.stdout + done.stderr
    assert_clean(json.loads(lines[0]))
    assert done.returncode == 0, done.stderr


async def test_a_member_the_tool_does_not_hold_fails_the_check(server_factory: ServerFactory):
    """Someone else in one of the run's rooms makes the consistency check FAIL (not ok)."""
    server = server_factory()
    config = LoadConfig(
        server.url, server.app_id, server.key, participants=6, rooms=2, duration=0.5, room_base=7700
    )
    async with httpx.AsyncClient(base_url=server.url, timeout=30) as http:
        entered = await http.post("/v1/rooms/7701/enter", headers=server.headers("outsider"))
        assert entered.status_code == 200, entered.text
        report = await run_loadtest(config)
    assert not report.consistency.passed
    [room] = report.consistency.mismatched
    assert room["roomId"] == 7701
    assert set(room["server"]) - set(room["tool"]) == {"outsider"}
    assert report.error_total == 0 and not report.ok


async def test_a_removed_member_enters_again_and_the_run_reports_it(sqlite_server: RunningServer):
    """An admin removes a member mid-run: close 4002 is counted, it re-enters, all consistent."""
    server = sqlite_server
    config = LoadConfig(
        server.url, server.app_id, server.key, participants=6, rooms=2, duration=3.0
    )
    test = LoadTest(config)
    run = asyncio.create_task(test.run())
    async with asyncio.timeout(WAIT):
        while test.recorder.phase != "traffic":  # noqa: ASYNC110
            await asyncio.sleep(0.05)
    victim = test.participants[0]
    async with httpx.AsyncClient(base_url=server.url, timeout=30) as http:
        path = f"/v1/admin/rooms/{victim.room_id}/users/{victim.user_id}/remove"
        removed = await http.post(path, headers=server.admin_headers())
        assert removed.status_code == 200, removed.text
    async with asyncio.timeout(WAIT):
        report = await run
    assert report.errors.get(f"close:{int(CloseCode.REMOVED)}") == 1, report.errors
    assert report.reentered == 1 and report.failed == 0
    assert report.consistency.passed and report.recovered
    assert report.messages_complete
    assert not report.ok


async def test_members_recover_after_a_server_restart(tmp_path: Path):
    """A restart mid-run: drops and refused connections are reported, everyone gets back."""
    serve = ServeProcess(tmp_path / "data", KEY)
    await asyncio.to_thread(serve.start)
    try:
        test = LoadTest(config_for(serve.url, KEY, duration=6.0, recovery_timeout=30.0))
        run = asyncio.create_task(test.run())
        async with asyncio.timeout(WAIT):
            while test.recorder.phase != "traffic":  # noqa: ASYNC110
                await asyncio.sleep(0.05)
        await asyncio.sleep(1.0)
        await asyncio.to_thread(serve.stop)
        await asyncio.to_thread(serve.start)
        async with asyncio.timeout(WAIT * 2):
            report = (await run).to_dict()
    finally:
        await asyncio.to_thread(serve.stop)
    errors = report["errors"]["byCode"]
    assert any(code.startswith("close:") for code in errors), errors
    assert report["reconnects"]["drops"] == 200, report["reconnects"]
    assert report["reconnects"]["failed"] == 0
    assert report["consistency"]["passed"], report["consistency"]
    assert report["recovered"] is True
    assert report["ok"] is False  # it saw errors, and says so
    messages = report["messages"]
    missing = await missing_deliveries(serve, test) if not messages["complete"] else []
    assert messages["acked"] == messages["sent"], (messages, missing)
    assert messages["received"] == messages["expected"], (messages, missing)


async def test_deliveries_are_counted_once_everyone_is_back_after_a_long_outage(tmp_path: Path):
    """The server is down past the drain: the run waits for members to reconnect and sync."""
    serve = ServeProcess(tmp_path / "data", KEY)
    await asyncio.to_thread(serve.start)
    config = config_for(
        serve.url,
        KEY,
        participants=10,
        rooms=2,
        duration=1.0,
        drain_timeout=0.5,
        signal_interval=0.0,
        recovery_timeout=30.0,
    )
    test = LoadTest(config)
    try:
        run = asyncio.create_task(test.run())
        async with asyncio.timeout(WAIT):
            while test.recorder.phase != "traffic":  # noqa: ASYNC110
                await asyncio.sleep(0.01)
        await asyncio.to_thread(serve.stop)  # most messages go out while it is down
        async with asyncio.timeout(WAIT):
            while test.recorder.phase != "drain":  # noqa: ASYNC110
                await asyncio.sleep(0.05)
        await asyncio.sleep(config.drain_timeout * 3)  # down for longer than the drain lasts
        await asyncio.to_thread(serve.start)
        async with asyncio.timeout(WAIT * 2):
            report = (await run).to_dict()
        messages = report["messages"]
        missing = await missing_deliveries(serve, test) if not messages["complete"] else []
    finally:
        await asyncio.to_thread(serve.stop)
    assert report["reconnects"]["drops"] == 10 and report["reconnects"]["failed"] == 0
    assert messages["acked"] == messages["sent"] == 20, (messages, missing)
    assert messages["received"] == messages["expected"] == 80, (messages, missing)
    assert report["consistency"]["passed"], report["consistency"]


async def missing_deliveries(serve: ServeProcess, test: LoadTest) -> list[str]:
    """Each delivery the server stored but a participant did not get: ``user: seq N from X``."""
    missing: list[str] = []
    async with httpx.AsyncClient(base_url=serve.url, timeout=30) as http:
        for p in test.participants:
            if p.room_uuid is None:
                missing.append(f"{p.user_id}: never entered")
                continue
            headers = {
                "X-TAvKit-SdkAppId": str(APP_ID),
                "X-TAvKit-UserId": p.user_id,
                "X-TAvKit-UserSig": gen_user_sig(APP_ID, KEY, p.user_id),
            }
            path = f"/v1/sessions/{p.room_uuid}/messages?limit=1000"
            response = await http.get(path, headers=headers)
            if response.status_code != 200:
                missing.append(f"{p.user_id}: history HTTP {response.status_code}")
                continue
            got = p.deliveries()
            missing += [
                f"{p.user_id}: seq {m['seq']} from {m['from']} ({m['clientMsgId']})"
                for m in response.json()["messages"]
                if m["from"] != p.user_id and (p.room_uuid, m["seq"]) not in got
            ]
    return missing


def test_config_refuses_impossible_runs():
    """More rooms than participants, a bad run tag or a roomId past u32 are refused early."""
    with pytest.raises(ValueError, match="at least one participant per room"):
        LoadConfig("http://x", APP_ID, KEY, participants=2, rooms=3)
    with pytest.raises(ValueError, match="run"):
        LoadConfig("http://x", APP_ID, KEY, run="no spaces")
    with pytest.raises(ValueError, match="roomId"):
        LoadConfig("http://x", APP_ID, KEY, rooms=2, room_base=0xFFFF_FFFF)


def test_cli_usage_mistake_exits_2():
    """A malformed ``--app`` is a usage mistake: exit 2 with the reason on stderr."""
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "tavkit",
            "loadtest",
            "--server",
            "http://127.0.0.1:9",
            "--app",
            "x",
        ],
        capture_output=True,
        text=True,
        timeout=WAIT,
    )
    assert done.returncode == 2
    assert "ID:KEY" in done.stderr
