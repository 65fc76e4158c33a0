"""Shared fixtures: real tavkit servers on loopback, over real SQLite and PostgreSQL.

``server_factory`` starts a real server (uvicorn in a background thread, port 0)
with any :class:`~tavkit.server.Settings` overrides and returns a
:class:`RunningServer`. It is parametrized over both databases, so a test using it
runs twice: ``[sqlite]`` and ``[postgres]``. Other test directories that want one
quick server use ``sqlite_server_factory`` or ``sqlite_server`` (SQLite only).
Everything here is synchronous, so sync tests (Playwright) and async tests both use
it; the server has its own event loop in its own thread.

The server itself (:class:`RunningServer`, :class:`Database`) is the one the
``tavkit.testing`` plugin gives integrators (``src/tavkit/testing/server.py``); this
file only adds the suite's fixtures on top.

PostgreSQL is ``TAVKIT_TEST_PG_URL`` (default ``postgres@127.0.0.1:5432/test``);
each test gets a schema of its own (servers it restarts keep it), dropped
afterwards. If PostgreSQL is down, the tests that need it fail.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Callable, Iterator
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest

from tavkit.server import AppConfig, Settings
from tavkit.testing.server import (
    Database,
    RunningServer,
    drop_database,
    make_database,
    random_key,
    run_sync,
)

__all__ = ["APP_ID", "Database", "RunningServer", "ServerFactory", "random_key", "run_sync"]

PG_URL = os.environ.get("TAVKIT_TEST_PG_URL", "postgresql+asyncpg://postgres@127.0.0.1:5432/test")
APP_ID = 1400000001


def _make_database(kind: str, tmp_path: Path) -> Database:
    return make_database(tmp_path, PG_URL if kind == "postgres" else None)


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
        drop_database(db)


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


SERIAL_FOLDERS: frozenset[str] = frozenset(
    {"browser", "web", "netlab", "sfu", "deploy", "loadtest"}
)
"""Test folders whose tests each load this 2-core machine by themselves: Chromium pages,
network namespaces with coturn, Janus, several replicas behind HAProxy, or 200
simulated participants (their runs timed out beside another test). ``make test``
runs them (and any ``browser`` test elsewhere) one at a time, after the rest have run in
two processes at once (``-n 2``: most other tests spend their time waiting on sockets
and timers, not on a core)."""


@pytest.hookimpl(tryfirst=True)  # before ``-m`` deselects by markers
def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Mark every test of :data:`SERIAL_FOLDERS` and every ``browser`` test ``serial``,
    so ``-m`` can split the suite."""
    tests = Path(__file__).parent
    for item in items:
        parts = item.path.relative_to(tests).parts if item.path.is_relative_to(tests) else ()
        if (parts and parts[0] in SERIAL_FOLDERS) or item.get_closest_marker("browser"):
            item.add_marker(pytest.mark.serial)


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    """Free aiortc decoder threads a test left blocked, so the interpreter can exit.

    aiortc's decoder threads are not daemons and end only when their receiver stops:
    one peer connection a test failed to close would hang the run at exit, after the
    report (``tests/server/_threads.py`` fails the recorder tests that leak one). Each
    thread released here is named on stderr, so the leak is still seen.
    """
    import sys

    from server._threads import release

    for thread in threading.enumerate():
        if thread.daemon or not thread.name.endswith("-decoder"):
            continue
        release(thread)  # what RTCRtpReceiver.stop() sends it
        print(f"tavkit tests: released a stranded aiortc {thread.name} thread", file=sys.stderr)
