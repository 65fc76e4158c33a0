"""Fixtures of the server suite: an HTTP client bound to the test server, and a
migrated store with a hand-driven clock for tests of the services themselves."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import TYPE_CHECKING

import httpx
import pytest

from tavkit.server.store.db import Store

from ._util import Clock
from ._webhooks import Receiver

if TYPE_CHECKING:
    from conftest import Database, RunningServer


@pytest.fixture
async def client(server: RunningServer) -> AsyncIterator[httpx.AsyncClient]:
    """An HTTP client for ``server`` (on each database)."""
    async with httpx.AsyncClient(base_url=server.url, timeout=30) as http:
        yield http


@pytest.fixture
async def store(database: Database) -> AsyncIterator[Store]:
    """A migrated store on each database."""
    store = Store.open(database.url, schema=database.schema)
    await store.migrate()
    try:
        yield store
    finally:
        await store.close()


@pytest.fixture
def clock() -> Clock:
    """The service's clock."""
    return Clock()


@pytest.fixture
async def receiver() -> AsyncIterator[Receiver]:
    """A receiver that is not yet listening; the test starts it."""
    found = Receiver()
    try:
        yield found
    finally:
        await found.stop()
