"""Failures reach onErrorListener in the seed's codes, and a refused start opens no media."""

from __future__ import annotations

import secrets
import socket
import time
from collections.abc import Callable

import httpx
import pytest
from playwright.sync_api import Browser, expect

from tavkit.auth import gen_private_map_key
from tavkit.server import AppConfig

from .pages import CALL_SERVER_SETTINGS, DENY_MEDIA, INSTRUMENT, CallPage, Server

pytestmark = pytest.mark.browser

OpenCall = Callable[..., CallPage]


def assert_no_media(page: CallPage) -> None:
    """Neither the camera nor a peer connection nor the socket was ever opened."""
    assert page.tv("gum") == 0
    assert page.tv("pcs") == 0
    assert page.tv("sockets") == 0


def test_missing_or_invalid_options_are_reported_without_any_network(
    open_call: OpenCall, call_server: Server, room: int
) -> None:
    """Each missing or malformed required option (a bad string room too) gets its avkit code
    and no request is made."""
    page = open_call("alice")
    good = {"sdkAppId": call_server.app_id, "userSig": call_server.sig("alice")}
    cases = [
        ({**good, "userId": None, "roomId": room}, 10002),
        ({**good, "userId": "not allowed!", "roomId": room}, 10002),
        ({**good, "sdkAppId": None, "roomId": room}, 10003),
        ({**good, "sdkAppId": "app", "roomId": room}, 10003),
        ({**good, "userSig": "", "roomId": room}, 10004),
        ({**good, "roomId": None}, 10005),
        ({**good, "roomId": 0}, 10005),
        ({**good, "roomId": 2**32}, 10005),
        ({**good, "roomId": "has space"}, 10005),
        ({**good, "roomId": None, "strRoomId": "x" * 65}, 10005),
        ({**good, "roomId": room, "strRoomId": "lobby"}, 10005),
    ]
    for options, code in cases:
        room_id = options.pop("roomId")
        options.setdefault("userId", "alice")
        assert page.page.evaluate("() => window.__tv.errors.length = 0") == 0
        assert page.start(room_id, **options) is False
        errors = page.tv("errors")
        assert [(e["module"], e["errorCode"]) for e in errors] == [("avkit", code)], options
        assert page.events("tavkit:error")[-1]["errorCode"] == code
    assert page.tv("fetches") == []
    assert_no_media(page)
    assert page.state() == "idle"


def test_bad_user_sig_is_refused_before_any_media(
    open_call: OpenCall, call_server: Server, room: int
) -> None:
    """A forged userSig yields the server's avkit 70346, then trtc -1019, and no media."""
    page = open_call("alice")
    forged = call_server.sig("mallory")  # a real signature, for someone else
    assert page.start(room, sdkAppId=call_server.app_id, userSig=forged) is False
    errors = page.tv("errors")
    assert [(e["module"], e["errorCode"]) for e in errors] == [("avkit", 70346), ("trtc", -1019)]
    assert all(isinstance(e["errorMsg"], str) and e["errorMsg"] for e in errors)
    assert_no_media(page)
    assert page.state() == "ended"


def test_expired_private_map_key_is_refused_before_any_media(
    sqlite_server_factory: Callable[..., Server], open_call: OpenCall, browser: Browser, room: int
) -> None:
    """An app that requires a privateMapKey refuses an expired one with avkit 86."""
    key = secrets.token_hex(32)
    app = AppConfig(1400000002, key, require_private_map_key=True)
    server = sqlite_server_factory(apps=(app,), **CALL_SERVER_SETTINGS)
    expired = gen_private_map_key(
        app.sdk_app_id, key, "alice", room_id=room, expire=60, now=int(time.time()) - 3600
    )
    context = browser.new_context()
    context.add_init_script(INSTRUMENT)
    try:
        page = CallPage(context.new_page(), server.url, "alice")
        ok = page.start(
            room,
            sdkAppId=app.sdk_app_id,
            userSig=server.sig("alice", app=app),
            privateMapKey=expired,
        )
        assert ok is False
        errors = page.tv("errors")
        assert [(e["module"], e["errorCode"]) for e in errors] == [("avkit", 86), ("trtc", -1019)]
        assert_no_media(page)
    finally:
        context.close()


def test_unreachable_server_is_http_10000(
    open_call: OpenCall, call_server: Server, room: int
) -> None:
    """When the server cannot be reached, the error is http 10000 (after retries), then -1019."""
    with socket.socket() as probe:  # a port that was free a moment ago: nobody listens
        probe.bind(("127.0.0.1", 0))
        dead = f"http://127.0.0.1:{probe.getsockname()[1]}"
    page = open_call("alice")
    ok = page.start(
        room, sdkAppId=call_server.app_id, userSig=call_server.sig("alice"), server=dead
    )
    assert ok is False
    errors = page.tv("errors")
    assert [(e["module"], e["errorCode"]) for e in errors] == [("http", 10000), ("trtc", -1019)]
    assert len(page.tv("fetches")) == 3  # one try and two retries
    assert_no_media(page)


def test_camera_permission_denied_shows_help_and_leaves_the_room(
    browser: Browser, call_server: Server, room: int
) -> None:
    """A refused camera is trtc 10001 with a help dialog; no peer connection; the room is left."""
    context = browser.new_context(viewport={"width": 390, "height": 844})
    context.add_init_script(INSTRUMENT)
    context.add_init_script(DENY_MEDIA)
    try:
        page = CallPage(context.new_page(), call_server.url, "alice")
        assert page.join(call_server, room) is False
        errors = page.tv("errors")
        assert [(e["module"], e["errorCode"]) for e in errors] == [("trtc", 10001)]
        dialog = page.page.locator('tavkit-call tavkit-dialog[data-kind="permission"]')
        expect(dialog).to_have_attribute("open", "")
        expect(dialog.locator("h2")).to_have_text("Camera access is blocked")
        expect(dialog.locator('button[data-choice="retry"]')).to_be_visible()
        page.screenshot("call-permission-help-phone.png")
        assert page.tv("pcs") == 0
        assert page.state() == "ended"
        # The component entered before asking for the camera, so it must have left again.
        listing = httpx.get(
            f"{call_server.url}/v1/admin/rooms", headers=call_server.admin_headers()
        )
        assert listing.status_code == 200, listing.text
        members = [
            m["userId"]
            for r in listing.json()["rooms"]
            if r["roomId"] == room
            for m in r["members"]
        ]
        assert "alice" not in members
    finally:
        context.close()
