"""The end screens, provoked for real: what a person reads when a call cannot start or ends.

Each refusal comes from the real server (a wrong or expired userSig, a full room, an
admin's removal or close) or the real browser (a context whose camera permission is
not granted). Every screen is read in English, then the element's ``lang`` flips to
Chinese and it is read again; screenshots go to test-artifacts/ for review. The
listener's errors stay the seed's codes, as before the screens existed.

This module's Chromium runs without ``--use-fake-ui-for-media-stream``, so a context's
permissions decide what getUserMedia gets, as a person's Allow or Block would.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from typing import Any

import httpx
import pytest
from playwright.sync_api import Browser, BrowserContext, expect, sync_playwright

from tavkit.auth import gen_user_sig

from .conftest import CHROMIUM, FLAGS
from .pages import CALL_SERVER_SETTINGS, INSTRUMENT, CallPage, Server

pytestmark = pytest.mark.browser

MEDIA = ["camera", "microphone"]
PHONE = {"viewport": {"width": 390, "height": 844}, "is_mobile": True, "has_touch": True}

# start() with listeners that record, and an onUserSigExpiredListener answering with
# window.__freshSig when the test asks for one (the page's way to give a corrected sig).
_START = """
async ([options, renew]) => {
  const tv = window.__tv;
  options.listener = {
    onUserInfoListener(ids, cb) {
      cb(ids.map((userId) => ({ userId, userName: "Name of " + userId })));
    },
    onHandupListener() { tv.handups += 1; },
    onErrorListener(error) { tv.errors.push(error); },
  };
  if (renew) options.listener.onUserSigExpiredListener = () => window.__freshSig;
  return await document.getElementById("call").start(options);
}
"""


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    """Chromium whose permission prompts are answered by each context's permissions."""
    # One camera here, as most desktops have: no Switch camera is offered.
    flags = [f for f in FLAGS if f != "--use-fake-ui-for-media-stream"]
    flags = [f.replace("device-count=2", "device-count=1") for f in flags]
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=flags)
        try:
            yield browser
        finally:
            browser.close()


@pytest.fixture
def context(browser: Browser) -> Iterator[BrowserContext]:
    """A desktop context that allowed the camera and the microphone."""
    ctx = browser.new_context(viewport={"width": 1280, "height": 800}, permissions=MEDIA)
    ctx.add_init_script(INSTRUMENT)
    try:
        yield ctx
    finally:
        ctx.close()


@pytest.fixture
def phone(browser: Browser) -> Iterator[BrowserContext]:
    """A touch phone (390×844) that allowed the camera and the microphone."""
    ctx = browser.new_context(**PHONE, permissions=MEDIA)
    ctx.add_init_script(INSTRUMENT)
    try:
        yield ctx
    finally:
        ctx.close()


def start(page: CallPage, room: int, sig: str, *, fresh: str | None = None, **extra: Any) -> Any:
    """start() as ``page``'s user with ``sig``; ``fresh`` is what a retry's renewal gives."""
    page.page.evaluate("(s) => { window.__freshSig = s; }", fresh)
    options = {"userId": page.user_id, "roomId": room, "userSig": sig, **extra}
    return page.page.evaluate(_START, [options, fresh is not None])


def screen(page: CallPage) -> dict[str, Any]:
    """The end screen as shown: its kind, title, hint and button (label, or "" if hidden)."""
    return dict(
        page.call(
            """(el) => {
                const root = el.shadowRoot;
                const button = root.querySelector('.tv-rejoin');
                return {
                    kind: root.querySelector('.tv-call').dataset.screen || '',
                    title: root.querySelector('.tv-status-text').textContent,
                    hint: root.querySelector('.tv-status-hint').textContent,
                    button: button.hidden ? '' : button.textContent,
                };
            }"""
        )
    )


def wait_screen(page: CallPage, kind: str, timeout: float = 20_000) -> None:
    """Wait until the element shows the end screen ``kind``."""
    page.page.wait_for_function(
        """(k) => document.getElementById('call').shadowRoot
              .querySelector('.tv-call').dataset.screen === k""",
        arg=kind,
        timeout=timeout,
        polling=100,
    )


def read_both(page: CallPage, name: str) -> tuple[dict[str, Any], dict[str, Any]]:
    """The screen in English and then in Chinese (the element's lang flipped), screenshotted."""
    page.page.evaluate("document.getElementById('call').setAttribute('lang', 'en')")
    en = screen(page)
    page.screenshot(f"screen-{name}-en.png")
    page.page.evaluate("document.getElementById('call').setAttribute('lang', 'zh')")
    zh = screen(page)
    page.screenshot(f"screen-{name}-zh.png")
    page.page.evaluate("document.getElementById('call').setAttribute('lang', 'en')")
    assert en["kind"] == zh["kind"] and en["title"] != zh["title"] and en["hint"] != zh["hint"]
    return en, zh


def codes(page: CallPage) -> list[tuple[str, int]]:
    """(module, errorCode) of every error onErrorListener received."""
    return [(e["module"], e["errorCode"]) for e in page.tv("errors")]


def retry(page: CallPage) -> None:
    """Press the end screen's button."""
    page.page.locator("tavkit-call .tv-rejoin").click()


def test_refused_signatures_explain_themselves_and_try_again_with_a_fresh_one(
    context: BrowserContext, phone: BrowserContext, call_server: Server, room: int
) -> None:
    """Wrong and expired userSigs each get their screen, on a desktop and a phone, in both
    languages; Try again appears only when the page can renew, and then enters."""
    app = call_server.app_id
    for where, ctx in (("desktop", context), ("phone", phone)):
        page = CallPage(ctx.new_page(), call_server.url, f"alice-{where}")
        good = call_server.sig(page.user_id)
        wrong = call_server.sig("mallory")  # a real signature, for someone else
        key = call_server.key  # type: ignore[attr-defined]
        expired = gen_user_sig(app, key, page.user_id, 60, now=int(time.time()) - 3600)

        assert start(page, room, wrong, sdkAppId=app) is False
        assert codes(page) == [("avkit", 70346), ("trtc", -1019)]  # the listener as before
        wait_screen(page, "wrongSig")
        en, zh = read_both(page, f"wrong-sig-no-renew-{where}")
        assert en["title"] == "Your sign-in for this call was not accepted"
        assert zh["title"] == "你的通话凭证未被接受"
        assert en["button"] == "" and zh["button"] == ""  # the same sig would fail again
        assert page.tv("gum") == 0

        assert start(page, room, wrong, sdkAppId=app, fresh=good) is False
        wait_screen(page, "wrongSig")
        en, zh = read_both(page, f"wrong-sig-{where}")
        assert (en["button"], zh["button"]) == ("Try again", "重试")
        retry(page)
        page.wait_state("waiting")
        # This browser lists one camera: no Switch camera, the others still there.
        switch = page.page.locator('tavkit-call button[data-action="switch-camera"]')
        expect(switch).to_be_hidden()
        expect(page.page.locator('tavkit-call button[data-action="camera"]')).to_be_visible()
        page.call("(el) => el.hangup()")
        wait_screen(page, "hungUp")
        en, zh = read_both(page, f"hung-up-{where}")
        assert (en["title"], en["button"]) == ("You left the call", "Rejoin")
        assert (zh["title"], zh["button"]) == ("你已离开通话", "重新加入")

        assert start(page, room, expired, sdkAppId=app, fresh=good) is False
        assert codes(page)[-2:] == [("avkit", 70346), ("trtc", -1019)]
        wait_screen(page, "expiredSig")
        en, zh = read_both(page, f"expired-sig-{where}")
        assert en["title"] == "Your sign-in for this call has expired"
        assert zh["title"] == "你的通话凭证已过期"
        retry(page)
        page.wait_state("waiting")
        page.call("(el) => el.hangup()")
        page.wait_state("ended")


def test_a_full_room_says_so_and_try_again_enters_once_a_place_frees(
    sqlite_server_factory: Callable[..., Server], context: BrowserContext, room: int
) -> None:
    """Room full (server 14000) is its own screen; Try again enters after someone leaves."""
    server = sqlite_server_factory(max_members=2, **CALL_SERVER_SETTINGS)
    alice, bob, carol = (
        CallPage(context.new_page(), server.url, u) for u in ("alice", "bob", "carol")
    )
    assert start(alice, room, server.sig("alice"), sdkAppId=server.app_id, endOnPeerLeave=False)
    assert start(bob, room, server.sig("bob"), sdkAppId=server.app_id)
    assert start(carol, room, server.sig("carol"), sdkAppId=server.app_id) is False
    assert codes(carol) == [("server", 14000), ("trtc", -1019)]
    wait_screen(carol, "roomFull")
    en, zh = read_both(carol, "room-full")
    assert (en["title"], en["button"]) == ("This call is full", "Try again")
    assert (zh["title"], zh["button"]) == ("通话人数已满", "重试")
    bob.call("(el) => el.hangup()")
    retry(carol)
    carol.wait_state("in-call")
    carol.wait_connected("alice")


def test_removed_and_closed_by_the_admin_say_who_ended_it(
    context: BrowserContext, call_server: Server, room: int
) -> None:
    """Removed by the host, and the room closed: each its screen, no button, others notified."""
    users = ("alice", "bob", "carol")
    alice, bob, carol = (CallPage(context.new_page(), call_server.url, u) for u in users)
    for page in (alice, bob, carol):
        assert start(page, room, call_server.sig(page.user_id), sdkAppId=call_server.app_id)
    alice.wait_connected("bob")
    admin = call_server.admin_headers()
    base = f"{call_server.url}/v1/admin/rooms/{room}"
    removed = httpx.post(f"{base}/users/bob/remove", headers=admin, json={})
    assert removed.status_code == 200, removed.text
    wait_screen(bob, "removed")
    en, zh = read_both(bob, "removed")
    assert (en["title"], en["button"]) == ("You were removed from the call", "")
    assert (zh["title"], zh["button"]) == ("你已被移出通话", "")
    notice = alice.page.locator("tavkit-call .tv-notice")
    expect(notice).to_have_text("Name of bob left the call")
    assert alice.state() == "in-call"  # a removal is no hang-up: the call goes on

    closed = httpx.post(f"{base}/close", headers=admin, json={})
    assert closed.status_code == 200, closed.text
    for page in (alice, carol):
        wait_screen(page, "closed")
    en, zh = read_both(alice, "closed")
    assert (en["title"], en["button"]) == ("The call was closed", "")
    assert (zh["title"], zh["button"]) == ("通话已关闭", "")
    assert en["hint"] == "The host ended this call for everyone."


def test_a_blocked_camera_explains_the_phone_way_and_try_again_works_once_allowed(
    browser: Browser, call_server: Server, room: int
) -> None:
    """A phone context without the camera permission: trtc 10001, a help dialog and a screen
    that speak of the site's settings (no address-bar icon); allowed, Try again enters."""
    ctx = browser.new_context(**PHONE, permissions=["microphone"])
    ctx.add_init_script(INSTRUMENT)
    try:
        page = CallPage(ctx.new_page(), call_server.url, "alice")
        assert start(page, room, call_server.sig("alice"), sdkAppId=call_server.app_id) is False
        assert codes(page) == [("trtc", 10001)]
        dialog = page.page.locator('tavkit-call tavkit-dialog[data-kind="permission"]')
        expect(dialog).to_have_attribute("open", "")
        message = dialog.locator(".tv-dialog-message")
        expect(message).to_contain_text("site's settings")
        assert "address bar" not in message.inner_text()
        page.screenshot("screen-camera-denied-dialog-phone.png")
        dialog.locator('button[data-choice="close"]').click()
        wait_screen(page, "cameraDenied")
        en, zh = read_both(page, "camera-denied-phone")
        assert (en["title"], en["button"]) == ("Camera access is blocked", "Try again")
        assert (zh["title"], zh["button"]) == ("无法使用摄像头", "重试")
        assert "address bar" not in en["hint"] and "tap Try again" in en["hint"]
        ctx.grant_permissions(MEDIA)
        retry(page)
        page.wait_state("waiting")
    finally:
        ctx.close()


def test_one_to_one_hang_up_ends_both_sides_and_a_group_leave_is_a_notice(
    context: BrowserContext, phone: BrowserContext, call_server: Server, room: int
) -> None:
    """Bob hangs up a 1v1: he left, Alice reads "the other party hung up" (对方已挂断); in a
    group of three, Carol's leave is a notice and the call goes on."""
    alice = CallPage(phone.new_page(), call_server.url, "alice")
    alice.page.evaluate("document.getElementById('call').setAttribute('lang', 'zh')")
    bob = CallPage(context.new_page(), call_server.url, "bob")
    for page in (alice, bob):
        assert start(page, room, call_server.sig(page.user_id), sdkAppId=call_server.app_id)
    alice.wait_connected("bob")
    bob.page.locator('tavkit-call button[data-action="hangup"]').click()
    bob.page.locator('tavkit-call tavkit-dialog button[data-choice="hangup"]').click()
    wait_screen(bob, "hungUp")
    wait_screen(alice, "peerHungUp")
    alice.screenshot("screen-peer-hung-up-phone-zh.png")
    assert screen(alice)["title"] == "对方已挂断" and screen(alice)["button"] == ""
    assert screen(bob)["title"] == "You left the call"
    assert alice.tv("handups") == 0 and bob.tv("handups") == 1
    assert codes(alice)[-1] == ("trtc", 5000)
    assert alice.state() == "ended"
    listing = httpx.get(f"{call_server.url}/v1/admin/rooms", headers=call_server.admin_headers())
    members = [m for r in listing.json()["rooms"] if r["roomId"] == room for m in r["members"]]
    assert members == [], members  # both left

    group = room + 5000
    carol = CallPage(context.new_page(), call_server.url, "carol")
    for page in (alice, bob, carol):
        assert start(page, group, call_server.sig(page.user_id), sdkAppId=call_server.app_id)
    alice.wait_connected("carol")
    bob.wait_connected("carol")
    carol.call("(el) => el.hangup()")
    expect(alice.page.locator("tavkit-call .tv-notice")).to_have_text("Name of carol 已离开通话")
    expect(bob.page.locator("tavkit-call .tv-notice")).to_have_text("Name of carol left the call")
    alice.screenshot("screen-group-leave-notice-phone-zh.png")
    assert alice.state() == "in-call" and bob.state() == "in-call"
    # Two are left of a call that had three: Bob hanging up now does not end Alice's.
    bob.call("(el) => el.hangup()")
    alice.wait_state("waiting")
