"""Two tabs ring each other: the incoming screen names the caller, Accept talks, Decline ends.

Both sides are ``<tavkit-call>`` in headless Chromium on the real server: the caller's
``call()`` shows the "calling…" screen and rings back, the callee's ``listen()`` shows
the incoming screen with the name the page's onUserInfoListener gives, and rings.
"""

from __future__ import annotations

from typing import Any

import pytest

from .pages import CallPage, Server
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
