"""Shared fixtures: real tavkit servers on loopback, over real SQLite and PostgreSQL.

``server_factory`` starts a real server (uvicorn in a background thread, port 0)
with any :class:`~tavkit.server.Settings` overrides and returns a
:class:`RunningServer`. It is parametrized over both databases, so a test using it
runs twice: ``[sqlite]`` and ``[postgres]``. Other test directories that want one
quick server use ``sqlite_server_factory`` or ``sqlite_server`` (SQLite only).
Everything here is synchronous, so sync tests (Playwright) and async tests both use
it; the server has its own event loop in its own thread.

PostgreSQL is ``TAVKIT_TEST_PG_URL`` (default ``postgres@127.0.0.1:5432/test``);
each test gets a schema of its own (servers it restarts keep it), dropped
afterwards. If PostgreSQL is down, the tests that need it fail.
"""

from __future__ import annotations

import asyncio
import os
import secrets
import socket
import sqlite3
import threading
from collections.abc import Callable, Coroutine, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, TypeVar

import asyncpg
import pytest
import uvicorn

from tavkit.auth import gen_private_map_key, gen_user_sig
from tavkit.protocol import MAX_FRAME_BYTES
from tavkit.server import AppConfig, Settings, create_app

T = TypeVar("T")

PG_URL = os.environ.get("TAVKIT_TEST_PG_URL", "postgresql+asyncpg://postgres@127.0.0.1:5432/test")
APP_ID = 1400000001
START_TIMEOUT = 60.0
STOP_TIMEOUT = 30.0


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
            conn = await _pg_connect(self.schema)
            try:
                return [tuple(row) for row in await conn.fetch(sql)]
            finally:
                await conn.close()

        return run_sync(run)


async def _pg_connect(schema: str | None = None) -> asyncpg.Connection:
    dsn = PG_URL.replace("postgresql+asyncpg://", "postgresql://", 1)
    settings = {"search_path": schema} if schema else None
    return await asyncpg.connect(dsn, timeout=10, server_settings=settings)


def _make_database(kind: str, tmp_path: Path) -> Database:
    if kind == "sqlite":
        path = tmp_path / "db" / "tavkit.db"
        return Database("sqlite", f"sqlite+aiosqlite:///{path}", sqlite_path=path)
    schema = f"tavkit_test_{secrets.token_hex(6)}"

    async def create() -> None:
        conn = await _pg_connect()
        try:
            await conn.execute(f'CREATE SCHEMA "{schema}"')
        finally:
            await conn.close()

    run_sync(create)
    return Database("postgres", PG_URL, schema=schema)


def _drop_database(db: Database) -> None:
    if db.kind != "postgres":
        return

    async def drop() -> None:
        conn = await _pg_connect()
        try:
            await conn.execute(f'DROP SCHEMA IF EXISTS "{db.schema}" CASCADE')
        finally:
            await conn.close()

    run_sync(drop)


class _ThreadServer(uvicorn.Server):
    """uvicorn with a thread-safe "started" signal."""

    def __init__(self, config: uvicorn.Config) -> None:
        super().__init__(config)
        self.ready = threading.Event()

    async def startup(self, sockets: list[socket.socket] | None = None) -> None:
        await super().startup(sockets=sockets)
        if self.started:
            self.ready.set()


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
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        sock.bind(("127.0.0.1", 0))
        self.port = sock.getsockname()[1]
        self.url = f"http://127.0.0.1:{self.port}"
        build = self.app_factory or create_app
        config = uvicorn.Config(
            build(self.settings),
            log_level="warning",
            lifespan="on",
            loop="asyncio",
            ws_max_size=MAX_FRAME_BYTES,
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
        server.should_exit = True
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


ServerFactory = Callable[..., RunningServer]


def _factory(database: Database, tmp_path: Path) -> Iterator[ServerFactory]:
    servers: list[RunningServer] = []

    def start(
        *, app_factory: Callable[[Settings], Any] | None = None, **overrides: Any
    ) -> RunningServer:
        base = Settings(
            host="127.0.0.1",
            port=0,
            data_dir=tmp_path / f"data{len(servers)}",
            database_url=database.url,
            database_schema=database.schema,
            apps=(AppConfig(APP_ID, random_key()),),
            admin_key=random_key(),
            close_grace=0.2,
            sweep_interval=0.1,
        )
        server = RunningServer(replace(base, **overrides), database, app_factory)
        servers.append(server)
        return server

    try:
        yield start
    finally:
        for server in servers:
            server.stop()


@pytest.fixture(params=["sqlite", "postgres"])
def database(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Database]:
    """A fresh database, once on SQLite and once on PostgreSQL (a schema of its own)."""
    db = _make_database(request.param, tmp_path)
    try:
        yield db
    finally:
        _drop_database(db)


@pytest.fixture
def server_factory(database: Database, tmp_path: Path) -> Iterator[ServerFactory]:
    """Start real servers on ``database``: ``server_factory(**settings_overrides)``.

    ``app_factory=`` builds the ASGI app from the settings instead of ``create_app``
    (to test tavkit mounted inside a host application, say).
    """
    yield from _factory(database, tmp_path)


@pytest.fixture
def server(server_factory: ServerFactory) -> RunningServer:
    """One real server with the default test settings, on each database."""
    return server_factory()


@pytest.fixture
def sqlite_server_factory(tmp_path: Path) -> Iterator[ServerFactory]:
    """Like ``server_factory`` but on SQLite only (for tests that are not about storage)."""
    yield from _factory(_make_database("sqlite", tmp_path), tmp_path)


@pytest.fixture
def sqlite_server(sqlite_server_factory: ServerFactory) -> RunningServer:
    """One real server on SQLite with the default test settings."""
    return sqlite_server_factory()


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    """Free aiortc decoder threads a test left blocked, so the interpreter can exit.

    aiortc's decoder threads are not daemons and end only when their receiver stops:
    one peer connection a test failed to close would hang the run at exit, after the
    report (``tests/server/_threads.py`` fails the recorder tests that leak one). Each
    thread released here is named on stderr, so the leak is still seen.
    """
    import queue
    import sys

    for thread in threading.enumerate():
        if thread.daemon or not thread.name.endswith("-decoder"):
            continue
        for argument in getattr(thread, "_args", ()):
            if isinstance(argument, queue.Queue):
                argument.put(None)  # what RTCRtpReceiver.stop() sends it
        print(f"tavkit tests: released a stranded aiortc {thread.name} thread", file=sys.stderr)
