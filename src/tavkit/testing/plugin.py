"""The pytest plugin (entry point ``pytest11``: ``tavkit``): fixtures for testing call flows.

Installed with ``pip install tavkit[testing]``; pytest loads it by itself. It adds:

* ``tavkit_server`` - a real tavkit server on 127.0.0.1 (port 0, uvicorn in a thread)
  on a fresh SQLite database, or a schema of its own in the PostgreSQL database of
  ``--tavkit-database-url``; one app with a random key, an admin key, a webhook
  receiver, fast timers (:data:`~tavkit.testing.server.FAST_TIMERS`). Mark a test
  ``@pytest.mark.tavkit_server(recording="auto", max_members=3)`` to change any
  :class:`~tavkit.server.Settings` field.
* ``participant`` - ``await participant("alice", room=1, colour=(255, 0, 0))`` enters
  a Python participant (:class:`~tavkit.testing.Participant`); all are hung up after
  the test.
* ``browser_participant`` - ``await browser_participant("carol", room=1)`` opens a
  ``<tavkit-call>`` tab in a headless Chromium (skips without Playwright/Chromium).

Nothing heavy is imported until a fixture is used, so the plugin costs nothing to
test runs that do not use it.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest
import pytest_asyncio

from tavkit.testing._imports import importing, narrow_assertion_rewriting

if TYPE_CHECKING:
    from tavkit.testing.browser import BrowserParticipant
    from tavkit.testing.participant import Participant
    from tavkit.testing.server import TavkitServer

__all__ = ["ParticipantFactory"]

ParticipantFactory = Callable[..., Awaitable["Participant"]]

APP_ID = 1400000001
"""The sdkAppId of the ``tavkit_server``'s app."""


def pytest_addoption(parser: pytest.Parser, pluginmanager: pytest.PytestPluginManager) -> None:
    """``--tavkit-database-url``: run ``tavkit_server`` on PostgreSQL instead of SQLite.

    Also the earliest moment the plugin runs: pytest has marked all of tavkit for
    assertion rewriting and nothing of it but the plugin is imported yet, so the marks
    are narrowed to the assertion helpers here (:mod:`tavkit.testing._imports` says why).
    """
    narrow_assertion_rewriting(pluginmanager)
    group = parser.getgroup("tavkit", "tavkit call testing")
    group.addoption(
        "--tavkit-database-url",
        dest="tavkit_database_url",
        default=None,
        help="postgresql+asyncpg://... database for tavkit_server "
        "(each test gets a schema of its own, dropped afterwards; default: SQLite)",
    )


def pytest_configure(config: pytest.Config) -> None:
    """Declare the ``tavkit_server`` marker (settings for the test's server)."""
    config.addinivalue_line(
        "markers",
        "tavkit_server(**settings): tavkit Settings fields for this test's tavkit_server",
    )


@pytest.fixture
def tavkit_server(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[TavkitServer]:
    """A real tavkit server on 127.0.0.1 with a fresh database, an app, its admin and a
    webhook receiver; stopped after the test."""
    with importing():
        from tavkit.server import AppConfig, Settings
        from tavkit.testing.server import (
            FAST_TIMERS,
            TavkitServer,
            drop_database,
            make_database,
            random_key,
        )
        from tavkit.testing.webhooks import WebhookReceiver

    marker = request.node.get_closest_marker("tavkit_server")
    overrides: dict[str, Any] = dict(marker.kwargs) if marker is not None else {}
    database = make_database(tmp_path / "tavkit", request.config.getoption("tavkit_database_url"))
    receiver = WebhookReceiver()
    try:
        settings = Settings(
            host="127.0.0.1",
            port=0,
            data_dir=tmp_path / "tavkit" / "data",
            database_url=database.url,
            database_schema=database.schema,
            apps=(AppConfig(APP_ID, random_key()),),
            admin_key=random_key(),
            webhook_url=receiver.url,
            webhook_secret=receiver.secret,
            **FAST_TIMERS,
        )
        server = TavkitServer(replace(settings, **overrides), database, receiver)
        try:
            yield server
        finally:
            server.stop()
    finally:
        receiver.close()
        drop_database(database)


@pytest_asyncio.fixture
async def participant(tavkit_server: TavkitServer) -> AsyncIterator[ParticipantFactory]:
    """Make Python participants: ``await participant("alice", room=1, **options)``.

    Options are :meth:`Participant.enter`'s (``colour``, ``file``, ``source``,
    ``privilege``, ``user_sig``, TAvKit's keywords). Everyone is hung up after the test.
    """
    with importing():
        from tavkit.testing.participant import Participant

    made: list[Participant] = []

    async def enter(user_id: str, room: int = 1, **options: Any) -> Participant:
        joined = await Participant.enter(tavkit_server, user_id, room, **options)
        made.append(joined)
        return joined

    try:
        yield enter
    finally:  # all at once: each hang-up waits for its own leave and its peers to close
        results = await asyncio.gather(
            *(joined.aclose() for joined in made), return_exceptions=True
        )
        for result in results:
            if isinstance(result, BaseException):
                raise result


@pytest_asyncio.fixture
async def browser_participant(
    tavkit_server: TavkitServer,
) -> AsyncIterator[Callable[..., Awaitable[BrowserParticipant]]]:
    """Make participants in a real headless Chromium: ``await browser_participant("carol")``.

    Skips the test when Playwright or a Chromium is missing.
    """
    from tavkit.testing.browser import Browsers, find_chromium

    _, missing = find_chromium()
    if missing is not None:
        pytest.skip(missing)
    browsers = Browsers(tavkit_server)
    try:
        yield browsers.enter
    finally:
        await browsers.aclose()
