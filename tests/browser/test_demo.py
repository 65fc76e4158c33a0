"""The demo page: a name and a room number put two tabs in one call, in two languages."""

from __future__ import annotations

from collections.abc import Callable, Iterator

import pytest
from playwright.sync_api import Browser, BrowserContext, Page, expect

from .pages import ARTIFACTS, CALL_SERVER_SETTINGS, INSTRUMENT, Server

pytestmark = pytest.mark.browser


@pytest.fixture
def demo_server(sqlite_server_factory: Callable[..., Server]) -> Server:
    """A server in demo mode: it serves the lobby at / and mints userSigs for it."""
    return sqlite_server_factory(demo=True, **CALL_SERVER_SETTINGS)


@pytest.fixture
def phone(browser: Browser) -> Iterator[BrowserContext]:
    """A phone-sized context, separate from the desktop one (its own localStorage)."""
    ctx = browser.new_context(viewport={"width": 390, "height": 844}, has_touch=True)
    ctx.add_init_script(INSTRUMENT)
    try:
        yield ctx
    finally:
        ctx.close()


def call_state(page: Page) -> str:
    """The state of the demo's <tavkit-call>."""
    return str(page.evaluate("document.getElementById('call').state"))


def wait_call_state(page: Page, state: str) -> None:
    """Wait until the demo's <tavkit-call> is in ``state``."""
    page.wait_for_function(
        "(s) => document.getElementById('call').state === s", arg=state, polling=100
    )


def test_two_tabs_join_from_the_lobby_and_hang_up(
    demo_server: Server, context: BrowserContext, phone: BrowserContext
) -> None:
    """Alice (English) and 张伟 (Chinese) join room 4321 from the lobby and see each other."""
    ARTIFACTS.mkdir(exist_ok=True)
    alice = context.new_page()
    alice.goto(demo_server.url + "/")
    expect(alice.locator("h1")).to_have_text("tavkit video call")
    alice.fill("#name", "Alice")
    alice.fill("#room", "4321")
    alice.screenshot(path=str(ARTIFACTS / "demo-lobby-desktop.png"))
    alice.click("#join")
    alice.click("tavkit-call .tv-pj-join")  # the pre-join check comes first
    wait_call_state(alice, "waiting")
    assert "room=4321" in alice.url  # the address bar is now an invitation

    zhang = phone.new_page()
    zhang.goto(demo_server.url + "/?room=4321")
    expect(zhang.locator("#room")).to_have_value("4321")
    for button in zhang.locator(".lang button").all():  # finger-sized on a phone
        box = button.bounding_box()
        assert box and box["height"] >= 44 and box["width"] >= 44, box
    zhang.click('.lang button[data-lang="zh"]')
    expect(zhang.locator("h1")).to_have_text("tavkit 视频通话")
    zhang.fill("#name", "张伟")
    zhang.screenshot(path=str(ARTIFACTS / "demo-lobby-phone-zh.png"))
    zhang.click("#join")
    join = zhang.locator("tavkit-call .tv-pj-join")
    expect(join).to_have_text("立即加入")
    zhang.screenshot(path=str(ARTIFACTS / "demo-prejoin-phone-zh.png"))
    join.click()
    wait_call_state(zhang, "in-call")
    wait_call_state(alice, "in-call")

    # Names travel inside the demo's userIds and come back through onUserInfoListener.
    expect(alice.locator("tavkit-call .tv-tile:not([data-local]) .tv-name")).to_have_text("张伟")
    expect(zhang.locator("tavkit-call .tv-tile:not([data-local]) .tv-name")).to_have_text("Alice")
    expect(zhang.locator('tavkit-call [data-action="mute"]')).to_have_attribute(
        "aria-label", "静音"
    )
    expect(zhang.locator("tavkit-call .tv-tile[data-local] .tv-name")).to_have_text("我")
    zhang.locator("tavkit-call .tv-tile:not([data-local]) video").evaluate(
        """(video) => new Promise((resolve) => video.requestVideoFrameCallback(resolve))"""
    )
    zhang.screenshot(path=str(ARTIFACTS / "demo-call-phone-zh.png"))

    zhang.locator('tavkit-call button[data-action="hangup"]').click()
    expect(zhang.locator("tavkit-call tavkit-dialog")).to_have_attribute("open", "")
    zhang.locator('tavkit-call tavkit-dialog button[data-choice="hangup"]').click()
    expect(zhang.locator("#join-form #message")).to_have_text("你已离开通话。")
    expect(zhang.locator("#join-form")).to_be_visible()
    # Alice's two-person call ends with it: the element says so, the page offers Back,
    # which clears the header row the call had (nothing overlaps the room title).
    wait_call_state(alice, "ended")
    status = alice.locator("tavkit-call .tv-status-text")
    expect(status).to_have_text("The other party hung up")
    back = alice.locator("#back")
    expect(back).to_be_visible()
    room_title = alice.locator("tavkit-call .tv-room").bounding_box()
    back_box = back.bounding_box()
    assert room_title and back_box and back_box["y"] + back_box["height"] <= room_title["y"]
    assert back_box["height"] >= 44
    assert "Failed to enter the room" not in alice.locator("body").inner_text()
    alice.screenshot(path=str(ARTIFACTS / "demo-peer-hung-up-desktop.png"))
    back.click()
    expect(alice.locator("#join-form")).to_be_visible()


def test_display_names_survive_the_userid_round_trip(
    demo_server: Server, context: BrowserContext
) -> None:
    """Any name, Chinese or long, becomes a valid userId and decodes back (truncated to fit)."""
    page = context.new_page()
    page.goto(demo_server.url + "/")
    result = page.evaluate(
        """async () => {
            const demo = await import('/tavkit/demo/demo.js');
            const names = ['Alice', '张伟', 'Zoë O\\'Brien', '长'.repeat(30), 'a b.c@d-e_f'];
            return names.map((name) => {
                const id = demo.nameToUserId(name);
                return [name, id, demo.userIdToName(id)];
            });
        }"""
    )
    for name, user_id, back in result:
        assert 0 < len(user_id) <= 64 and all(c.isalnum() or c in "_.@-" for c in user_id)
        assert name.startswith(back) and len(back) >= min(len(name), 14), (name, back)
    assert result[1][2] == "张伟"


def test_the_demo_pages_load_with_no_missing_file(
    demo_server: Server, context: BrowserContext
) -> None:
    """The lobby, the embed page and the dashboard fetch nothing that is not there (their
    icon included: a browser asks for /favicon.ico when a page names none)."""
    page = context.new_page()
    missing: list[str] = []
    page.on("response", lambda r: missing.append(r.url) if r.status >= 400 else None)
    for path in ("/", "/tavkit/demo/embed.html", "/dashboard"):
        page.goto(demo_server.url + path)
        page.wait_for_load_state("networkidle")
        icon = page.evaluate("document.querySelector('link[rel=icon]')?.href")
        assert icon and page.request.get(icon).ok, (path, icon)
    assert missing == []
