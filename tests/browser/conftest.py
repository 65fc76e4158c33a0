"""Real-browser fixtures: Debian's Chromium driven by Playwright, a real tavkit server.

One browser per test module (starting Chromium is the slow part); a fresh context
per test, so pages of different tests never share storage or permissions. Chromium
is the system's ``/usr/bin/chromium`` with fake camera and microphone devices and
the permission prompt answered "allow"; Playwright's own browser download is never
used. The server is the real one on SQLite, with ICE candidates limited to loopback;
``short_timeout_server`` drops a silent member within seconds, for the tests about
tabs that vanish.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable, Iterator

import pytest
from playwright.sync_api import Browser, BrowserContext, sync_playwright

from .pages import CALL_SERVER_SETTINGS, INSTRUMENT, SHORT_HEARTBEAT_TIMEOUT, CallPage, Server

CHROMIUM = "/usr/bin/chromium"
FLAGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    # Two cameras, as a phone has (front and back): Switch camera is offered.
    "--use-fake-device-for-media-stream=fps=30,device-count=2",
    "--use-fake-ui-for-media-stream",
    "--allow-loopback-in-peer-connection",
]

_rooms = itertools.count(1000)


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    """One headless Chromium for the whole module."""
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=FLAGS)
        try:
            yield browser
        finally:
            browser.close()


@pytest.fixture
def context(browser: Browser) -> Iterator[BrowserContext]:
    """A fresh browser context (desktop-sized) with the instrumentation script."""
    ctx = browser.new_context(viewport={"width": 1280, "height": 800})
    ctx.add_init_script(INSTRUMENT)
    try:
        yield ctx
    finally:
        ctx.close()


@pytest.fixture
def phone(browser: Browser) -> Iterator[BrowserContext]:
    """A touch phone held upright (390×844); a test may turn it with set_viewport_size."""
    ctx = browser.new_context(
        viewport={"width": 390, "height": 844}, is_mobile=True, has_touch=True
    )
    ctx.add_init_script(INSTRUMENT)
    try:
        yield ctx
    finally:
        ctx.close()


@pytest.fixture
def call_server(sqlite_server_factory: Callable[..., Server]) -> Server:
    """A real tavkit server (SQLite) with 1 s heartbeats and loopback-only ICE."""
    return sqlite_server_factory(**CALL_SERVER_SETTINGS)


@pytest.fixture
def short_timeout_server(sqlite_server_factory: Callable[..., Server]) -> Server:
    """Like ``call_server`` but a silent member is dropped after SHORT_HEARTBEAT_TIMEOUT."""
    return sqlite_server_factory(
        **{**CALL_SERVER_SETTINGS, "heartbeat_timeout": SHORT_HEARTBEAT_TIMEOUT}
    )


@pytest.fixture
def room() -> int:
    """A room number no other test in this run uses."""
    return next(_rooms)


@pytest.fixture
def open_call(context: BrowserContext, call_server: Server) -> Callable[..., CallPage]:
    """Open a tab for ``user_id`` on the call server: ``open_call("alice")``."""

    def open_page(user_id: str, ctx: BrowserContext | None = None) -> CallPage:
        page = (ctx or context).new_page()
        return CallPage(page, call_server.url, user_id)

    return open_page
