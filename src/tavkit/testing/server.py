"""A real tavkit server for tests: uvicorn in a thread on 127.0.0.1 port 0, on a fresh database.

:class:`RunningServer` serves the real ASGI app (:func:`tavkit.server.create_app`) from
a background thread with its own event loop, so synchronous tests (Playwright) and
asynchronous ones (any event loop, any pytest-asyncio mode) use it alike. It carries
the helpers a test needs to talk to it: userSigs and privateMapKeys minted with the
app's key, credential headers, the admin's userSig.

:class:`Database` is the store it runs on: a fresh SQLite file, or a schema of its own
in a PostgreSQL database (:func:`make_database`, :func:`drop_database`), with a back
door (:meth:`Database.execute`) for tests that look under the hood.

This is the machinery of the ``tavkit_server`` fixture (:mod:`tavkit.testing.plugin`)
and of tavkit's own test suite.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import secrets
import socket
import sqlite3
import threading
from collections.abc import Callable, Coroutine
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import httpx
import uvicorn

from tavkit.auth import gen_private_map_key, gen_user_sig
from tavkit.protocol import MAX_FRAME_BYTES
from tavkit.server import AppConfig, Settings, create_app
from tavkit.server.listen import listening_socket
from tavkit.server.wsprotocol import LeanWebSocketProtocol
from tavkit.testing.assertions import ServerLogErrors
from tavkit.testing.webhooks import WebhookReceiver

__all__ = [
    "FAST_TIMERS",
    "Database",
    "RunningServer",
    "TavkitServer",
    "drop_database",
    "make_database",
    "random_key",
    "run_sync",
]

T = TypeVar("T")

START_TIMEOUT = 60.0
STOP_TIMEOUT = 30.0

FAST_TIMERS: dict[str, Any] = {
    "close_grace": 0.2,
    "sweep_interval": 0.1,
    "webhook_retry_base": 0.05,
    "webhook_retry_cap": 0.5,
    "webhook_poll_interval": 0.05,
}
"""Settings that make a server notice things within a fraction of a second: an empty
room closes, a webhook is sent and retried. Heartbeats keep their defaults, so a short
network blackout resumes the membership instead of removing it."""


def run_sync(factory: Callable[[], Coroutine[Any, Any, T]]) -> T:
    """Run a coroutine to completion from sync code, even inside a running event loop."""
    with ThreadPoolExecutor(1) as pool:
        return pool.submit(lambda: asyncio.run(factory())).result(timeout=60)


def random_key() -> str:
    """A fresh app key in the vendor's format (64 hex characters)."""
    return secrets.token_hex(32)


@dataclass
class Database:
    """A database a server runs on, with a back door for tests that tamper with it."""

    kind: str
    url: str
    schema: str | None = None
    sqlite_path: Path | None = None

    def execute(self, sql: str) -> list[tuple[Any, ...]]:
        """Run one SQL statement directly (not through tavkit) and return its rows."""
        if self.kind == "sqlite":
            assert self.sqlite_path is not None
            with sqlite3.connect(self.sqlite_path, timeout=15) as conn:
                return [tuple(row) for row in conn.execute(sql).fetchall()]

        async def run() -> list[tuple[Any, ...]]:
            conn = await _pg_connect(self.url, self.schema)
            try:
                return [tuple(row) for row in await conn.fetch(sql)]
            finally:
                await conn.close()

        return run_sync(run)


async def _pg_connect(url: str, schema: str | None = None) -> Any:
    import asyncpg  # type: ignore[import-untyped]

    dsn = url.replace("postgresql+asyncpg://", "postgresql://", 1)
    settings = {"search_path": schema} if schema else None
    return await asyncpg.connect(dsn, timeout=10, server_settings=settings)


def make_database(directory: Path, postgres_url: str | None = None) -> Database:
    """A fresh SQLite database under ``directory``, or a new schema in ``postgres_url``."""
    if postgres_url is None:
        path = directory / "db" / "tavkit.db"
        return Database("sqlite", f"sqlite+aiosqlite:///{path}", sqlite_path=path)
    schema = f"tavkit_test_{secrets.token_hex(6)}"

    async def create() -> None:
        conn = await _pg_connect(postgres_url)
        try:
            await conn.execute(f'CREATE SCHEMA "{schema}"')
        finally:
            await conn.close()

    run_sync(create)
    return Database("postgres", postgres_url, schema=schema)


def drop_database(db: Database) -> None:
    """Drop a PostgreSQL database's schema (a SQLite file goes with its directory)."""
    if db.kind != "postgres":
        return

    async def drop() -> None:
        conn = await _pg_connect(db.url)
        try:
            await conn.execute(f'DROP SCHEMA IF EXISTS "{db.schema}" CASCADE')
        finally:
            await conn.close()

    run_sync(drop)


class _ThreadServer(uvicorn.Server):
    """uvicorn with a thread-safe "started" signal and a stop that needs no poll."""

    def __init__(self, config: uvicorn.Config) -> None:
        super().__init__(config)
        self.ready = threading.Event()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._wake: asyncio.Event | None = None

    async def startup(self, sockets: list[socket.socket] | None = None) -> None:
        await super().startup(sockets=sockets)
        if self.started:
            self.ready.set()

    async def main_loop(self) -> None:
        """uvicorn's loop (a tick every 0.1 s), woken at once by :meth:`exit_soon`.

        uvicorn notices ``should_exit`` at its next tick only: 50 ms on average of every
        test's teardown spent waiting for a timer.
        """
        self._loop, self._wake = asyncio.get_running_loop(), asyncio.Event()
        counter = 0
        while not await self.on_tick(counter):
            counter = (counter + 1) % 864000
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(0.1):
                    await self._wake.wait()

    async def shutdown(self, sockets: list[socket.socket] | None = None) -> None:
        """uvicorn's shutdown without its fixed pauses: it sleeps 0.1 s after asking the
        connections to close and then polls them and the running requests every 0.1 s;
        this polls every 5 ms (the same bound, ``timeout_graceful_shutdown``), then runs
        the lifespan's shutdown as uvicorn does."""
        for server in self.servers:
            server.close()
        for sock in sockets or []:
            sock.close()
        state = self.server_state
        for connection in list(state.connections):
            connection.shutdown()
        try:
            async with asyncio.timeout(self.config.timeout_graceful_shutdown):
                # uvicorn's state has no event to wait on
                while (state.connections or state.tasks) and not self.force_exit:  # noqa: ASYNC110
                    await asyncio.sleep(0.005)
                for server in self.servers:
                    await server.wait_closed()
        except TimeoutError:
            for task in state.tasks:
                task.cancel(msg="Task cancelled, timeout graceful shutdown exceeded")
        if not self.force_exit:
            await self.lifespan.shutdown()

    def exit_soon(self) -> None:
        """Ask the server to shut down (from any thread)."""
        self.should_exit = True
        loop, wake = self._loop, self._wake
        if loop is not None and wake is not None:
            with contextlib.suppress(RuntimeError):  # the loop has already ended
                loop.call_soon_threadsafe(wake.set)


class RunningServer:
    """A real tavkit server on 127.0.0.1, in a thread, with helpers to talk to it."""

    def __init__(
        self,
        settings: Settings,
        database: Database,
        app_factory: Callable[[Settings], Any] | None = None,
    ) -> None:
        self.settings = settings
        self.database = database
        self.app_factory = app_factory
        self.url = ""
        self.port = 0
        self._server: _ThreadServer | None = None
        self._thread: threading.Thread | None = None
        self.start()

    @property
    def app_id(self) -> int:
        """The first configured app's sdkAppId."""
        return self.settings.apps[0].sdk_app_id

    @property
    def key(self) -> str:
        """The first configured app's key."""
        return self.settings.apps[0].key

    @property
    def ws_url(self) -> str:
        """The signaling socket's URL."""
        return self.url.replace("http://", "ws://", 1) + "/v1/ws"

    def start(self) -> None:
        """Start serving (again) on a fresh port; raises if the app fails to start."""
        sock = listening_socket("127.0.0.1", 0)
        self.port = sock.getsockname()[1]
        self.url = f"http://127.0.0.1:{self.port}"
        build = self.app_factory or create_app
        config = uvicorn.Config(
            build(self.settings),
            log_level="warning",
            lifespan="on",
            loop="asyncio",
            ws_max_size=MAX_FRAME_BYTES,
            ws=LeanWebSocketProtocol,  # as `tavkit serve`
            proxy_headers=False,  # as `tavkit serve`: only --trusted-proxies are believed
        )
        server = _ThreadServer(config)
        thread = threading.Thread(
            target=lambda: asyncio.run(server.serve(sockets=[sock])),
            name=f"tavkit-server-{self.port}",
            daemon=True,
        )
        thread.start()
        self._server, self._thread = server, thread
        started = server.ready.wait(START_TIMEOUT)
        if not started:
            self.stop()
            sock.close()
            raise RuntimeError(f"the tavkit server did not start within {START_TIMEOUT} s")

    def stop(self) -> None:
        """Shut the server down (lifespan included) and wait for its thread."""
        server, thread = self._server, self._thread
        self._server = self._thread = None
        if server is None or thread is None:
            return
        server.exit_soon()
        thread.join(STOP_TIMEOUT)
        if thread.is_alive():
            raise RuntimeError("the tavkit server did not stop")

    def restart(self) -> None:
        """Stop, then start again on the same data directory and database."""
        self.stop()
        self.start()

    def sig(self, user_id: str, *, expire: int = 86400, app: AppConfig | None = None) -> str:
        """A valid userSig for ``user_id`` (in the first app unless ``app``)."""
        app = app or self.settings.apps[0]
        return gen_user_sig(app.sdk_app_id, app.key, user_id, expire)

    def pmk(self, user_id: str, room_id: int, privilege: int = 255) -> str:
        """A privateMapKey for ``user_id`` into ``room_id``."""
        return gen_private_map_key(
            self.app_id, self.key, user_id, room_id=room_id, privilege=privilege
        )

    def headers(
        self,
        user_id: str,
        *,
        sig: str | None = None,
        pmk: str | None = None,
        app_id: int | None = None,
    ) -> dict[str, str]:
        """Credential headers for ``user_id`` (a valid userSig unless ``sig`` is given)."""
        headers = {
            "X-TAvKit-SdkAppId": str(app_id if app_id is not None else self.app_id),
            "X-TAvKit-UserId": user_id,
            "X-TAvKit-UserSig": sig if sig is not None else self.sig(user_id),
        }
        if pmk is not None:
            headers["X-TAvKit-PrivateMapKey"] = pmk
        return headers

    def admin_sig(self, *, expire: int = 86400, app: AppConfig | None = None) -> str:
        """The admin's userSig: the admin userId signed with the admin key."""
        app = app or self.settings.apps[0]
        key = self.settings.admin_key_of(app)
        if key is None:
            raise ValueError("this server has no admin key")
        return gen_user_sig(app.sdk_app_id, key, self.settings.admin_user, expire)

    def admin_headers(self, *, app: AppConfig | None = None) -> dict[str, str]:
        """Credential headers of the app's admin (signed with the admin key)."""
        app = app or self.settings.apps[0]
        return self.headers(
            self.settings.admin_user, sig=self.admin_sig(app=app), app_id=app.sdk_app_id
        )


class TavkitServer(RunningServer):
    """The ``tavkit_server`` fixture's server: a :class:`RunningServer` with an admin, a
    webhook receiver its app delivers to, and a record of the errors it logged.

    ``webhooks`` is a :class:`~tavkit.testing.webhooks.WebhookReceiver` (``None`` if
    the server was started without one); ``admin`` is a synchronous HTTP client whose
    every request carries the app admin's credentials; ``log_errors`` keeps what the
    server logged at ERROR or worse (what :func:`~tavkit.testing.assert_no_errors`
    reads).
    """

    def __init__(
        self, settings: Settings, database: Database, webhooks: WebhookReceiver | None = None
    ) -> None:
        self.webhooks = webhooks
        self.log_errors = ServerLogErrors("tavkit-server-")
        self._admin: httpx.Client | None = None
        super().__init__(settings, database)

    def start(self) -> None:
        """Start serving, then listen to its error log (uvicorn resets its loggers on start)."""
        super().start()
        for name in ("", "uvicorn"):
            logger = logging.getLogger(name)
            if self.log_errors not in logger.handlers:
                logger.addHandler(self.log_errors)

    def stop(self) -> None:
        """Stop serving; close the admin client and stop listening to the log."""
        try:
            super().stop()
        finally:
            if self._admin is not None:
                self._admin.close()
                self._admin = None
            for name in ("", "uvicorn"):
                logging.getLogger(name).removeHandler(self.log_errors)

    @property
    def admin(self) -> httpx.Client:
        """An HTTP client for this server with the admin's credentials on every request."""
        if self._admin is None or self._admin.base_url != httpx.URL(self.url):
            self._admin = httpx.Client(base_url=self.url, headers=self.admin_headers(), timeout=30)
        return self._admin

    def sessions(self) -> list[dict[str, Any]]:
        """The app's sessions, newest first (``GET /v1/admin/sessions``)."""
        answer = self.admin.get("/v1/admin/sessions")
        answer.raise_for_status()
        sessions: list[dict[str, Any]] = answer.json()["sessions"]
        return sessions

    def quality(self, room_uuid: str) -> list[dict[str, Any]]:
        """The quality samples the members reported for a session (``.../quality``)."""
        answer = self.admin.get(f"/v1/sessions/{room_uuid}/quality")
        answer.raise_for_status()
        samples: list[dict[str, Any]] = answer.json()["quality"]
        return samples

    def recordings(self, room_uuid: str) -> list[dict[str, Any]]:
        """The session's recordings (``GET /v1/sessions/{uuid}/recordings``)."""
        answer = self.admin.get(f"/v1/sessions/{room_uuid}/recordings")
        answer.raise_for_status()
        recordings: list[dict[str, Any]] = answer.json()["recordings"]
        return recordings
