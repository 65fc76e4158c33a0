"""Credentials that end mid-call, in Chromium: ``onUserSigExpiredListener`` and ``expired``.

Signatures live a few seconds and the server's renewal grace is one second. alice's
page answers ``onUserSigExpiredListener(callback)`` with a fresh userSig; bob's page
has no such listener, and his signature ends after alice's, so by the time bob is
removed alice's old deadline has passed too. Nothing asserts a duration.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import httpx
from playwright.sync_api import BrowserContext

from tavkit.auth import decode_sig

from .pages import CALL_SERVER_SETTINGS, POLL, CallPage, Server

# start() with recording listeners; alice's answers the expiry through the callback.
_START = """
async ([options, fresh]) => {
  const tv = window.__tv;
  tv.expiredAsked = 0;
  tv.renewed = [];
  const call = document.getElementById("call");
  call.addEventListener("tavkit:renewed", (event) => tv.renewed.push(event.detail));
  options.listener = {
    onErrorListener(error) { tv.errors.push(error); },
  };
  if (fresh) {
    options.listener.onUserSigExpiredListener = (callback) => {
      tv.expiredAsked += 1;
      setTimeout(() => callback(fresh), 0);
    };
  }
  return await call.start(options);
}
"""


def start(page: CallPage, server: Server, room: int, sig: str, fresh: str | None) -> Any:
    """Start ``page``'s call with ``sig``; ``fresh`` is what its listener renews with."""
    options = {"userId": page.user_id, "roomId": room, "sdkAppId": server.app_id, "userSig": sig}
    return page.page.evaluate(_START, [options, fresh])


def test_expiring_tab_that_renews_stays_and_one_that_does_not_is_removed(
    context: BrowserContext, sqlite_server_factory: Callable[..., Any], room: int
) -> None:
    """alice's page renews through onUserSigExpiredListener and stays in the call; bob's,
    with no such listener, is removed ("expired") and alice sees him leave for that reason."""
    server = sqlite_server_factory(**CALL_SERVER_SETTINGS, renew_grace=1.0)
    alice = CallPage(context.new_page(), server.url, "alice")
    bob = CallPage(context.new_page(), server.url, "bob")
    alice_sig = server.sig("alice", expire=4)
    assert start(alice, server, room, alice_sig, server.sig("alice", expire=3600)) is True
    bob_sig = server.sig("bob", expire=6)
    assert decode_sig(bob_sig).expires_at > decode_sig(alice_sig).expires_at
    assert start(bob, server, room, bob_sig, None) is True

    bob.wait_state("ended", timeout=30_000)
    assert any("expired" in error["errorMsg"] for error in bob.tv("errors"))
    alice.page.wait_for_function(
        "() => window.__tv.events.some((e) => e.type === 'tavkit:user-leave')",
        timeout=15_000,
        polling=POLL,
    )
    assert alice.events("tavkit:user-leave") == [{"userId": "bob", "reason": "expired"}]

    # bob's end came after alice's old one: her old deadline has passed, and she is in.
    assert alice.tv("expiredAsked") == 1
    [renewed] = alice.tv("renewed")
    assert renewed["expiresAt"] > decode_sig(alice_sig).expires_at
    assert alice.state() == "waiting" and alice.tv("errors") == []
    users = httpx.get(
        f"{server.url}/v1/rooms/{room}/users", headers=server.headers("alice"), timeout=30
    )
    assert [m["userId"] for m in users.json()["members"]] == ["alice"]
