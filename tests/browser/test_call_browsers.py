"""Two tabs ring each other: the incoming screen names the caller, Accept talks, Decline ends.

Both sides are ``<tavkit-call>`` in headless Chromium on the real server: the caller's
``call()`` shows the "calling…" screen and rings back, the callee's ``listen()`` shows
the incoming screen with the name the page's onUserInfoListener gives, and rings.
"""

from __future__ import annotations

import base64
import io
import math
import wave
from typing import Any

import httpx
import pytest
from playwright.sync_api import Browser

from .pages import INSTRUMENT, CallPage, Server
from .test_calls import call_events, record, screen, wait_event
from .test_python_interop import WAIT

pytestmark = pytest.mark.browser

NAMES = {"alice": "Alice Liu", "bob": "Bob Chen"}

_RING = """
async ([options, method, names]) => {
  const call = document.getElementById("call");
  window.__calls = [];
  options.listener = {
    onCallListener(event) { window.__calls.push(event); },
    onUserInfoListener(ids, cb) { cb(ids.map((userId) => ({ userId, userName: names[userId] }))); },
  };
  const answer = await call[method](options);
  return answer ? answer.callId : null;
}
"""


def ring(tab: CallPage, server: Server, method: str, **extra: Any) -> Any:
    """``listen()`` or ``call()`` in ``tab`` with recording listeners; the call id for call()."""
    options = {"sdkAppId": server.app_id, "userId": tab.user_id, "userSig": server.sig(tab.user_id)}
    return tab.page.evaluate(_RING, [{**options, **extra}, method, NAMES])


# A browser that holds sound back until the page is used, as Chrome does for a page
# nobody has touched yet. Headless Chromium lets every page play (and Playwright's
# evaluate counts as a user gesture), so here an AudioContext waits for a real tap or
# key press, which Playwright's mouse gives. Every <audio>'s play() is recorded (and
# passed through).
_AUTOPLAY_RULES = """
(() => {
  let used = false;
  for (const name of ["pointerdown", "keydown"]) {
    window.addEventListener(name, (e) => { used = used || e.isTrusted; }, true);
  }
  const Real = window.AudioContext;
  window.AudioContext = class extends Real {
    get state() { return used ? super.state : "suspended"; }
    resume() { return used ? super.resume() : new Promise(() => {}); }
  };
  window.__played = [];
  const play = HTMLMediaElement.prototype.play;
  HTMLMediaElement.prototype.play = function () {
    window.__played.push(this.src);
    return play.call(this);
  };
})();
"""


def bell() -> str:
    """A page's own ring: a short 660 Hz tone as a WAV data: URL (no network)."""
    frames = bytes(int(128 + 60 * math.sin(2 * math.pi * 660 * i / 8000)) for i in range(1600))
    out = io.BytesIO()
    with wave.open(out, "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(1)
        w.setframerate(8000)
        w.writeframes(frames)
    return "data:audio/wav;base64," + base64.b64encode(out.getvalue()).decode()


def ringing(tab: CallPage) -> str:
    """What the tab rings now: "incoming", "outgoing" or ""."""
    return str(tab.call("(el) => el.ringing"))


def test_a_tab_calls_a_tab_that_accepts_and_both_see_each_other(
    open_call: Any, call_server: Server
) -> None:
    """Bob's screen names Alice and rings; Accept stops both rings and video flows both ways."""
    alice, bob = open_call("alice"), open_call("bob")
    ring(bob, call_server, "listen")
    call_id = ring(alice, call_server, "call", callees=["bob"], media="video")
    wait_event(bob, "onCallReceived")
    incoming = screen(bob)
    assert "Alice Liu" in incoming.inner_text()
    assert "Invites you to a video call" in incoming.inner_text()
    assert "Bob Chen" in screen(alice).inner_text()
    assert (ringing(alice), ringing(bob)) == ("outgoing", "incoming")
    incoming.get_by_role("button", name="Accept").click()
    bob.wait_connected("alice")
    alice.wait_connected("bob")
    assert bob.video_frames("alice", frames=10)["last"] > 0
    assert alice.video_frames("bob", frames=10)["last"] > 0
    assert not screen(alice).is_visible() and not screen(bob).is_visible()
    assert (ringing(alice), ringing(bob)) == ("", "")
    alice.call("(el) => el.hangup()")
    wait_event(bob, "onCallEnd")
    bob.wait_state("ended")
    assert call_events(alice) == ["onCallBegin", "onCallEnd"]
    assert call_events(bob) == ["onCallReceived", "onCallBegin", "onCallEnd"]
    assert record(call_server, call_id)["events"] == ["call.ringing", "call.accepted", "call.ended"]


def test_a_tab_declining_ends_the_callers_call_with_the_declined_screen(
    open_call: Any, call_server: Server
) -> None:
    """Decline stops the rings; Alice reads that Bob declined, in English and in Chinese."""
    alice, bob = open_call("alice"), open_call("bob")
    ring(bob, call_server, "listen")
    call_id = ring(alice, call_server, "call", callees=["bob"], media="audio")
    wait_event(bob, "onCallReceived")
    assert "Invites you to a voice call" in screen(bob).inner_text()
    screen(bob).get_by_role("button", name="Decline").click()
    wait_event(alice, "onUserReject")
    end = alice.page.locator("tavkit-call .tv-status")
    end.get_by_text("Bob Chen declined the call").wait_for(timeout=WAIT * 1000)
    alice.call("(el) => el.setAttribute('lang', 'zh')")
    end.get_by_text("Bob Chen拒绝了通话").wait_for(timeout=WAIT * 1000)
    assert alice.state() == "ended"
    assert (ringing(alice), ringing(bob)) == ("", "")
    assert not screen(alice).is_visible() and not screen(bob).is_visible()
    assert call_events(bob) == ["onCallReceived", "onUserReject"]
    assert record(call_server, call_id)["state"] == "declined"


def test_the_ring_waits_for_a_gesture_and_the_page_can_replace_or_silence_it(
    browser: Browser, call_server: Server
) -> None:
    """Silent until the first tap (no error); a page's bell plays instead; mute mode silences."""
    ctx = browser.new_context(viewport={"width": 390, "height": 844})
    ctx.add_init_script(INSTRUMENT)
    ctx.add_init_script(_AUTOPLAY_RULES)
    bob = CallPage(ctx.new_page(), call_server.url, "bob")
    errors: list[str] = []
    bob.page.on("pageerror", lambda e: errors.append(str(e)))
    audible = "(el) => el.ringAudible"
    try:
        ring(bob, call_server, "listen")

        def invite() -> None:
            answer = httpx.post(
                f"{call_server.url}/v1/calls",
                json={"callees": ["bob"], "media": "audio"},
                headers=call_server.headers("alice"),
            )
            assert answer.status_code == 200, answer.text
            bob.page.wait_for_function(
                "() => document.getElementById('call').ringing === 'incoming'", polling=100
            )

        invite()
        assert bob.call(audible) is False  # the browser holds sound back: no ring, no error
        bob.page.mouse.click(195, 40)  # a tap on the screen, not on its buttons
        bob.page.wait_for_function("() => document.getElementById('call').ringAudible", polling=100)
        screen(bob).get_by_role("button", name="Decline").click()
        assert (ringing(bob), bob.call(audible)) == ("", False)

        own = bell()
        bob.call("(el, url) => el.setCallingBell(url)", own)
        invite()
        bob.page.wait_for_function("() => document.getElementById('call').ringAudible", polling=100)
        assert bob.page.evaluate("window.__played") == [own]
        bob.call("(el) => el.enableMuteMode(true)")
        assert (ringing(bob), bob.call(audible)) == ("incoming", False)
        screen(bob).get_by_role("button", name="Decline").click()
        assert ringing(bob) == ""
    finally:
        ctx.close()
    assert errors == []
