"""Small helpers shared by the server tests."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

import httpx

from tavkit.errors import ErrorCode, http_status
from tavkit.server.bus import InProcessBus
from tavkit.server.rooms.service import RoomService
from tavkit.server.settings import AppConfig, Settings
from tavkit.server.store.db import Store

T = TypeVar("T")


def expect_error(response: httpx.Response, code: ErrorCode, *, status: int | None = None) -> str:
    """Assert ``response`` is the seed's error ``code`` with its HTTP status; return errorMsg."""
    body = response.json()
    assert set(body) == {"module", "errorCode", "errorMsg"}, body
    assert (body["module"], body["errorCode"]) == (code.module.value, int(code)), body
    assert response.status_code == (status if status is not None else http_status(code)), body
    assert isinstance(body["errorMsg"], str) and body["errorMsg"]
    assert "Traceback" not in body["errorMsg"]
    return str(body["errorMsg"])


async def eventually(
    probe: Callable[[], Awaitable[T | None]], *, within: float = 15.0, every: float = 0.05
) -> T:
    """Poll ``probe`` until it returns something truthy; fail after ``within`` seconds."""
    deadline = time.monotonic() + within
    while True:
        value = await probe()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"condition not met within {within} s")
        await asyncio.sleep(every)


async def session_of(
    client: httpx.AsyncClient, room_uuid: str, headers: dict[str, str]
) -> dict[str, Any]:
    """``GET /v1/sessions/{uuid}``, asserting success."""
    response = await client.get(f"/v1/sessions/{room_uuid}", headers=headers)
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    return body


class Clock:
    """A clock that moves only when told to."""

    def __init__(self) -> None:
        self.now = 1_700_000_000.0

    def __call__(self) -> float:
        return self.now


APP = 1400000001
"""The sdkAppId of the service tests' one app."""


async def room_service(store: Store, clock: Clock, *, max_members: int) -> RoomService:
    """A RoomService on ``store`` and ``clock``: 3 s heartbeats, 10 s timeout, 2 s grace."""
    settings = Settings(
        apps=(AppConfig(APP, "a" * 64),),
        heartbeat_interval=3.0,
        heartbeat_timeout=10.0,
        close_grace=2.0,
        max_members=max_members,
    )
    service = RoomService(store, InProcessBus(), settings, clock=clock)
    await service.register_apps(settings.apps)
    return service
