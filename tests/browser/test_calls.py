"""``<tavkit-call>`` ringing and rung: a tab and a Python client call each other."""

from __future__ import annotations

from typing import Any

import httpx
import pytest

from .pages import CallPage, Server
from .test_python_interop import WAIT, KitThread, OpenCall

pytestmark = pytest.mark.browser

_LISTEN = """
async ([options, method]) => {
  const call = document.getElementById("call");
  window.__calls = [];
  options.listener = { onCallListener(event) { window.__calls.push(event); } };
  const answer = await call[method](options);
  return answer ? answer.callId : null;
}
"""


def call_events(tab: CallPage) -> list[str]:
    """The onCallListener events the tab heard, by name."""
    return [e["type"] for e in tab.page.evaluate("window.__calls")]


def wait_event(tab: CallPage, name: str) -> None:
    """Wait until the tab's onCallListener heard ``name``."""
    tab.page.wait_for_function(
        "(name) => (window.__calls || []).some((e) => e.type === name)",
        arg=name,
        timeout=WAIT * 1000,
        polling=100,
    )


def screen(tab: CallPage) -> Any:
    """The call screen inside the element's shadow root."""
    return tab.page.locator("tavkit-call .tv-callscreen")


def record(server: Server, call_id: str) -> dict[str, Any]:
    """The call's record and its event types, as the admin reads them."""
    found: dict[str, Any] = httpx.get(
        f"{server.url}/v1/calls/{call_id}", headers=server.admin_headers()
    ).json()["call"]
    events = httpx.get(f"{server.url}/v1/calls/{call_id}/events", headers=server.admin_headers())
    found["events"] = [e["type"] for e in events.json()["events"]]
    return found


def test_a_tab_rung_by_python_accepts_talks_and_leaves_when_the_caller_hangs_up(
    open_call: OpenCall, call_server: Server
) -> None:
    """The tab's incoming screen names the caller; Accept joins, media flows both ways."""
    tab = open_call("web")
    options = {"sdkAppId": call_server.app_id, "userId": "web", "userSig": call_server.sig("web")}
    tab.page.evaluate(_LISTEN, [options, "listen"])
    peer = KitThread(call_server, "py")
    try:
        handle = peer.run(
            peer.kit.call(
                callees=["web"],
                sdk_app_id=call_server.app_id,
                user_id="py",
                user_sig=call_server.sig("py"),
            )
        )
        wait_event(tab, "onCallReceived")
        assert screen(tab).get_by_role("heading").inner_text() == "py"  # no onUserInfoListener
        assert "Invites you to a video call" in screen(tab).inner_text()
        screen(tab).get_by_role("button", name="Accept").click()
        assert peer.run(handle.result()) == "accepted"
        tab.wait_connected("py")
        assert tab.video_frames("py", frames=10)["last"] > 0
        video, _audio = peer.wait_frames("web", video=10, audio=10)
        assert video >= 10
        screen(tab).wait_for(state="hidden", timeout=WAIT * 1000)
        peer.run(handle.hangup())
        wait_event(tab, "onCallEnd")
        tab.wait_state("ended")
        found = record(call_server, handle.call_id)
        peer.run(handle.aclose())
    finally:
        peer.close()
    assert (found["state"], found["endReason"]) == ("ended", "hangup")
    assert found["events"] == ["call.ringing", "call.accepted", "call.ended"]
    assert call_events(tab)[:2] == ["onCallReceived", "onCallBegin"]


def test_a_tab_calling_python_hears_the_decline_and_leaves(
    open_call: OpenCall, call_server: Server
) -> None:
    """The tab's "calling…" screen shows until Python declines; then it leaves the room."""
    peer = KitThread(call_server, "py")
    try:

        async def decline_first() -> str:
            invitations = peer.kit.listen(
                sdk_app_id=call_server.app_id, user_id="py", user_sig=call_server.sig("py")
            )
            invitation = await anext(invitations)
            await invitation.decline(reason="not now")
            await invitations.aclose()
            return invitation.call.call_id

        declining = peer.submit(decline_first())
        tab = open_call("web")
        options = {
            "sdkAppId": call_server.app_id,
            "userId": "web",
            "userSig": call_server.sig("web"),
            "callees": ["py"],
            "media": "audio",
        }
        call_id = tab.page.evaluate(_LISTEN, [options, "call"])
        assert declining.result(WAIT) == call_id
        wait_event(tab, "onUserReject")
        screen(tab).wait_for(state="hidden", timeout=WAIT * 1000)
        # Out of the room: left it ("ended"), or never entered if the decline came first.
        tab.page.wait_for_function(
            "() => ['idle', 'ended'].includes(document.getElementById('call').state)",
            timeout=WAIT * 1000,
            polling=100,
        )
    finally:
        peer.close()
    found = record(call_server, call_id)
    assert (found["state"], found["callees"][0]["reason"]) == ("declined", "not now")
