"""Fixtures of the server suite: an HTTP client bound to the test server."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import TYPE_CHECKING

import httpx
import pytest

if TYPE_CHECKING:
    from conftest import RunningServer


@pytest.fixture
async def client(server: RunningServer) -> AsyncIterator[httpx.AsyncClient]:
    """An HTTP client for ``server`` (on each database)."""
    async with httpx.AsyncClient(base_url=server.url, timeout=30) as http:
        yield http
