"""``tavkit serve`` and ``tavkit db upgrade`` run as real processes."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING

import httpx
import pytest

from tavkit.auth import verify_user_sig
from tavkit.server.app import DEMO_APP_FILE

if TYPE_CHECKING:
    from conftest import Database

START_TIMEOUT = 60.0


def tavkit(*args: str, env: dict[str, str] | None = None) -> subprocess.Popen[str]:
    """Start ``python -m tavkit ARGS`` with a clean TAVKIT_* environment."""
    clean = {k: v for k, v in os.environ.items() if not k.startswith("TAVKIT_")}
    return subprocess.Popen(
        [sys.executable, "-m", "tavkit", *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        env={**clean, **(env or {})},
    )


def wait_for_url(process: subprocess.Popen[str]) -> str:
    """Read the process's output until it prints the URL it serves on."""
    found: list[str] = []
    output: list[str] = []
    done = threading.Event()

    def read() -> None:
        assert process.stdout is not None
        for line in process.stdout:
            output.append(line)
            match = re.search(r"tavkit serving on (https?://\S+)", line)
            if match and not found:
                found.append(match.group(1))
                done.set()
        done.set()

    threading.Thread(target=read, daemon=True).start()
    done.wait(START_TIMEOUT)
    assert found, "".join(output)
    return found[0]


@pytest.fixture
def demo_server(tmp_path: Path) -> Iterator[tuple[str, Path]]:
    """``tavkit serve --demo --port 0`` as a subprocess; yields (url, data dir)."""
    data = tmp_path / "data"
    process = tavkit(
        "serve", "--demo", "--port", "0", "--data-dir", str(data), "--log-level", "warning"
    )
    try:
        yield wait_for_url(process), data
    finally:
        process.send_signal(signal.SIGINT)
        try:
            code = process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=30)
            raise
        # uvicorn shuts down, then lets SIGINT end the process the conventional way (130).
        assert code in (0, 130), f"tavkit serve exited with {code} on SIGINT"


async def test_serve_demo_on_port_0_prints_its_url_and_mints_usersigs(demo_server):
    """The demo server answers /healthz and mints userSigs that verify with its stored key."""
    url, data = demo_server
    assert re.fullmatch(r"http://127\.0\.0\.1:\d+", url) and not url.endswith(":0")
    async with httpx.AsyncClient(base_url=url, timeout=30) as client:
        health = await client.get("/healthz")
        assert health.json() == {"status": "ok", "database": "ok"}
        minted = (await client.post("/v1/demo/usersig", json={"userId": "alice"})).json()
        bad = await client.post("/v1/demo/usersig", json={"userId": "no spaces"})
        assert bad.json()["errorCode"] == 10004
        page = await client.get("/")
        entered = await client.post(
            "/v1/rooms/1/enter",
            headers={
                "X-TAvKit-SdkAppId": str(minted["sdkAppId"]),
                "X-TAvKit-UserId": "alice",
                "X-TAvKit-UserSig": minted["userSig"],
            },
        )
    app = json.loads((data / DEMO_APP_FILE).read_text())
    assert minted["sdkAppId"] == app["sdkAppId"] and minted["userId"] == "alice"
    verify_user_sig(minted["userSig"], sdk_app_id=app["sdkAppId"], key=app["key"], user_id="alice")
    assert page.status_code == 200 and "text/html" in page.headers["content-type"]
    assert entered.status_code == 200


def test_demo_mode_refuses_a_public_host(tmp_path):
    """--demo with a non-loopback host exits with an error instead of serving."""
    process = tavkit(
        "serve", "--demo", "--host", "0.0.0.0", "--port", "0", "--data-dir", str(tmp_path)
    )
    output, _ = process.communicate(timeout=60)
    assert process.returncode == 2
    assert "--unsafe-demo" in output


def test_serve_reads_its_options_from_the_environment(tmp_path):
    """A bad TAVKIT_* value stops serve with a message naming the variable."""
    process = tavkit("serve", "--port", "0", env={"TAVKIT_HEARTBEAT_INTERVAL": "often"})
    output, _ = process.communicate(timeout=60)
    assert process.returncode == 2
    assert "TAVKIT_HEARTBEAT_INTERVAL" in output


def test_serve_refuses_a_webhook_url_without_its_secret(tmp_path):
    """--webhook-url alone stops serve: deliveries must be signed."""
    process = tavkit(
        "serve",
        "--port",
        "0",
        "--data-dir",
        str(tmp_path),
        "--webhook-url",
        "http://127.0.0.1:9/hooks",
    )
    output, _ = process.communicate(timeout=60)
    assert process.returncode == 2
    assert "webhook_url and webhook_secret go together" in output


def test_db_upgrade_creates_the_schema(database: Database, tmp_path):
    """tavkit db upgrade applies the migrations to the database it is given."""
    args = ["db", "upgrade", "--database-url", database.url, "--data-dir", str(tmp_path)]
    if database.schema:
        args += ["--database-schema", database.schema]
    process = tavkit(*args)
    output, _ = process.communicate(timeout=120)
    assert process.returncode == 0, output
    tables = {
        "sqlite": "SELECT name FROM sqlite_master WHERE type = 'table'",
        "postgres": f"SELECT tablename FROM pg_tables WHERE schemaname = '{database.schema}'",
    }[database.kind]
    names = {row[0] for row in database.execute(tables)}
    assert {"apps", "room_sessions", "members", "session_events", "alembic_version"} <= names
