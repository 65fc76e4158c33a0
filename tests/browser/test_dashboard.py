"""Log reporting end to end: a real call's reports reach the server and the dashboard's charts."""

from __future__ import annotations

import asyncio
import socket
import threading
import time
from collections.abc import Callable
from typing import Any

import httpx
import pytest
from playwright.sync_api import BrowserContext, Locator, Page, expect
from playwright.sync_api import Error as PlaywrightError

from .pages import ARTIFACTS, CALL_SERVER_SETTINGS, CallPage, Server

pytestmark = pytest.mark.browser

OpenCall = Callable[..., CallPage]
WAIT = 30.0


class PythonMember:
    """A Python ``TAvKit`` client (it reports by itself), in a thread with its own event loop.

    The browser tests are synchronous (Playwright's sync API), so the Python side
    of the call runs its asyncio loop in a thread; :meth:`leave` hangs it up.
    """

    def __init__(self, server: Server, user_id: str, room: int) -> None:
        self.server, self.user_id, self.room = server, user_id, room
        self.ready = threading.Event()
        self.failure: BaseException | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._stop: asyncio.Event | None = None
        self._thread = threading.Thread(target=self._thread_main, daemon=True)

    def join(self) -> None:
        """Start the client and wait until it is in the room."""
        self._thread.start()
        assert self.ready.wait(WAIT), "the Python client did not join"
        if self.failure is not None:
            raise self.failure

    def leave(self) -> None:
        """Hang up (the kit's reporter flushes) and wait for the thread."""
        if self._loop is not None and self._stop is not None:
            self._loop.call_soon_threadsafe(self._stop.set)
        self._thread.join(WAIT)
        assert not self._thread.is_alive(), "the Python client did not hang up"
        if self.failure is not None:
            raise self.failure

    def _thread_main(self) -> None:
        try:
            asyncio.run(self._main())
        except BaseException as exc:  # reported to the test thread by join()/leave()
            self.failure = exc
            self.ready.set()

    async def _main(self) -> None:
        from client._util import enter, make_kit

        self._loop = asyncio.get_running_loop()
        self._stop = asyncio.Event()
        async with make_kit(self.server.url) as kit:
            await enter(kit, self.server, self.user_id, self.room)
            self.ready.set()
            async with asyncio.timeout(300):
                await self._stop.wait()
            await kit.hangup()  # the kit's reporter sends its last batch here


def admin_get(server: Server, path: str) -> Any:
    """GET ``path`` with the admin's credentials; the JSON body."""
    response = httpx.get(f"{server.url}{path}", headers=server.admin_headers(), timeout=30)
    assert response.status_code == 200, response.text
    return response.json()


def wait_for(probe: Callable[[], Any], what: str, within: float = WAIT) -> Any:
    """Poll ``probe`` until it returns something truthy."""
    deadline = time.monotonic() + within
    while True:
        value = probe()
        if value:
            return value
        assert time.monotonic() < deadline, f"{what} within {within} s"
        time.sleep(0.2)


def sign_in(page: Page, server: Server, user: str = "administrator") -> None:
    """Open the dashboard and sign in as ``user`` of the server's app."""
    page.goto(f"{server.url}/dashboard")
    # A single-app server prefills its sdkAppId (the test servers have one app).
    expect(page.locator("input[name=sdkAppId]")).to_have_value(str(server.app_id))
    page.fill("input[name=userId]", user)
    # The admin signs with the admin key; anyone else with the app key.
    sig = server.admin_sig(expire=3600) if user == "administrator" else server.sig(user)
    page.fill("textarea[name=userSig]", sig)
    page.click("button[type=submit]")


def shoot(locator: Locator, path: str) -> None:
    """Screenshot one card. The list re-renders every 10 s, replacing its cards; a shot
    that lands on a re-render is taken again from the new card."""
    for attempt in range(3):
        try:
            locator.screenshot(path=path)
            return
        except PlaywrightError as err:
            if "not attached" not in str(err) or attempt == 2:
                raise


# A demo userId: "Alice Wang" in base64url plus a suffix (web/demo/names.js).
ALICE = "QWxpY2UgV2FuZw.erht"


def test_a_real_call_is_reported_queried_and_charted(
    open_call: OpenCall, call_server: Server, room: int, context: BrowserContext
) -> None:
    """A browser and a Python client in a call: their reports arrive and are charted.

    People are shown by name (bob by the name alice's page gave him, alice by the name
    inside her demo userId), and alice's mute and chat message are on the timeline.
    """
    alice = open_call(ALICE)
    # Alice hangs up herself after Bob left (her hang-up is what the test reads back).
    assert alice.join(call_server, room, endOnPeerLeave=False) is True
    alice.wait_state("waiting")
    room_uuid = alice.events("tavkit:joined")[0]["roomUuid"]

    bob = PythonMember(call_server, "bob", room)
    bob.join()
    try:
        alice.wait_connected("bob")
        alice.call("(el) => el.mute(true)")
        alice.call("(el) => el.sendMessage('the prescription number is 4711')")

        def samples_from_both() -> list[dict[str, Any]] | None:
            quality = admin_get(call_server, f"/v1/sessions/{room_uuid}/quality")["quality"]
            flowing = {
                s["userId"]
                for s in quality
                if (s.get("bitrateInKbps") or 0) > 0 and s.get("rttMs") is not None
            }
            return quality if flowing == {ALICE, "bob"} else None

        wait_for(samples_from_both, "quality samples with media from both members")
    finally:
        bob.leave()
    alice.call("(el) => el.hangup()")

    def final_flush() -> list[dict[str, Any]] | None:
        logs = admin_get(call_server, f"/v1/sessions/{room_uuid}/logs")["logs"]
        hung_up = {line["userId"] for line in logs if line["event"] == "hangup"}
        return logs if hung_up == {ALICE, "bob"} else None

    logs = wait_for(final_flush, "the last batches, sent on hang-up")
    quality = admin_get(call_server, f"/v1/sessions/{room_uuid}/quality")["quality"]
    by_user = {user: [s for s in quality if s["userId"] == user] for user in (ALICE, "bob")}
    assert {s["peerId"] for s in by_user[ALICE]} == {"bob"}
    assert {s["peerId"] for s in by_user["bob"]} == {ALICE}
    for user, samples in by_user.items():
        assert any(s["candidateType"] == "host" for s in samples), (user, samples[-1])
        assert all(0 <= (s["packetLoss"] or 0) <= 1 for s in samples)
        assert max(s["bitrateOutKbps"] or 0 for s in samples) > 10, user
    browser_video = [s for s in by_user[ALICE] if s["width"]]
    assert browser_video and any(s["fps"] for s in browser_video)
    events = {(line["userId"], line["event"]) for line in logs}
    assert {
        (ALICE, "joined"),
        (ALICE, "hangup"),
        (ALICE, "user-info"),
        ("bob", "joined"),
        ("bob", "hangup"),
    } <= events

    page = context.new_page()
    problems: list[str] = []
    page.on("console", lambda m: problems.append(m.text) if m.type == "error" else None)
    page.on("pageerror", lambda e: problems.append(str(e)))
    sign_in(page, call_server)
    row = page.locator(f'tr.row[data-uuid="{room_uuid}"]')
    expect(row).to_contain_text("Alice Wang, Name of bob")
    page.screenshot(path=str(_artifact("dashboard-sessions.png")), full_page=True)
    row.click()
    expect(page.locator("figure.chart")).to_have_count(4)
    for title in ("Bitrate received", "Packet loss", "Round-trip time"):
        chart = page.locator("figure.chart", has_text=title)
        expect(chart.locator(".legend li")).to_have_text(["Alice Wang", "Name of bob"])
        assert chart.locator("polyline").count() >= 2, title
    expect(page.locator("table.people tr[data-user]")).to_have_count(2)
    expect(page.locator('table.people tr[data-user="bob"] .person')).to_have_text("Name of bob bob")
    expect(page.locator(f'table.people tr[data-user="{ALICE}"] .person-name')).to_have_text(
        "Alice Wang"
    )
    # What alice did in the call, from the server's own log and the stored messages.
    expect(page.locator('.tl[data-kind="muted"] .tl-user')).to_contain_text("Alice Wang")
    expect(page.locator('.tl[data-kind="message"] .tl-text')).to_have_text(
        "the prescription number is 4711"
    )
    expect(page.locator('.tl[data-kind="joined"]')).to_have_count(2)
    expect(page.locator('.tl[data-kind="left"]')).to_have_count(2)
    # Each member's join phases (the browser's and the Python client's), first frame included.
    joins = page.locator('.tl[data-kind="join-timeline"]')
    expect(joins).to_have_count(2)
    expect(joins.locator('.tl-phase[data-phase="first-frame"]')).to_have_count(2)
    # Hover the last point of the first line: the tooltip shows the values there.
    bitrate = page.locator("figure.chart", has_text="Bitrate received").locator("svg[role=img]")
    box = bitrate.bounding_box()
    last = bitrate.locator("polyline").first.get_attribute("points") or ""
    x, y = (float(v) for v in last.split()[-1].split(","))
    assert box is not None
    page.mouse.move(box["x"] + x / 640 * box["width"], box["y"] + y / 250 * box["height"])
    page.screenshot(path=str(_artifact("dashboard-session.png")), full_page=True)
    expect(page.locator(".chart-tip").first).to_contain_text("kbps")
    page.get_by_role("button", name="Per connection").click()
    rtt = page.locator("figure.chart", has_text="Round-trip time")
    expect(rtt.locator(".legend li")).to_have_text(
        ["Alice Wang → Name of bob", "Name of bob → Alice Wang"]
    )
    page.set_viewport_size({"width": 390, "height": 844})
    page.locator(".timeline").scroll_into_view_if_needed()
    page.screenshot(path=str(_artifact("dashboard-session-phone.png")))
    # On a phone the page never scrolls sideways: wide tables scroll in their own box.
    assert page.evaluate("() => document.documentElement.scrollWidth") <= 390
    assert problems == []  # no script error, nothing blocked by the page's CSP


def test_the_dashboard_quotes_string_rooms(
    context: BrowserContext, call_server: Server, room: int
) -> None:
    """A session of string room "<n>#s" is listed and titled with the string quoted."""
    entered = httpx.post(
        f"{call_server.url}/v1/str-rooms/{room}%23s/enter",
        headers=call_server.headers("alice"),
        timeout=30,
    )
    assert entered.status_code == 200, entered.text
    room_uuid = entered.json()["roomUuid"]
    page = context.new_page()
    sign_in(page, call_server)
    row = page.locator(f'tr.row[data-uuid="{room_uuid}"]')
    expect(row.locator("td").first).to_have_text(f'"{room}#s"')
    row.click()
    expect(page.locator("h1")).to_have_text(f'Room "{room}#s"')


def test_the_dashboard_shows_failing_webhooks_and_the_deliveries_given_up(
    context: BrowserContext, sqlite_server_factory: Callable[..., Server], room: int
) -> None:
    """An endpoint that refuses every delivery: the card says failing, names only its
    origin (never the path, which may hold a token) and lists each given-up event."""
    with socket.socket() as probe:  # a port nobody listens on: every delivery is refused
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    server = sqlite_server_factory(
        **CALL_SERVER_SETTINGS,
        webhook_url=f"http://127.0.0.1:{port}/hooks/t0ken-in-path",
        webhook_secret="s" * 32,
        webhook_retry_base=0.05,
        webhook_retry_cap=0.1,
        webhook_give_up=0.3,
    )
    for action in ("enter", "exit"):
        response = httpx.post(
            f"{server.url}/v1/rooms/{room}/{action}", headers=server.headers("alice"), timeout=30
        )
        assert response.status_code == 200, response.text

    def all_given_up() -> bool:
        state = admin_get(server, "/v1/admin/webhooks")
        return bool(state["dead"] >= 2 and state["pending"] == 0)

    # Every event of the enter and the exit given up, not only the first two: the card
    # is compared with the dead letters, which must not grow after they are counted.
    wait_for(all_given_up, "every delivery given up")
    dead = admin_get(server, "/v1/admin/webhooks/dead")["deadLetters"]
    page = context.new_page()
    sign_in(page, server)
    card = page.locator("#webhooks")
    expect(card).to_contain_text(f"http://127.0.0.1:{port}")
    expect(card.locator("tbody tr")).to_have_count(len(dead))
    first = card.locator("tbody tr").first
    expect(first.locator("td").nth(0)).to_have_text(str(dead[0]["eventId"]))
    expect(first.locator("td").nth(1)).to_have_text(dead[0]["type"])
    assert "t0ken" not in card.inner_text()
    page.set_viewport_size({"width": 390, "height": 844})
    shoot(card, str(ARTIFACTS / "dashboard-webhooks-phone.png"))
    width = page.evaluate("document.documentElement.scrollWidth")
    assert width <= 390, f"the page scrolls sideways on a phone: {width} px"  # tables scroll
    page.screenshot(path=str(ARTIFACTS / "dashboard-list-phone.png"))


def test_the_dashboard_lists_calls_with_each_callees_outcome(
    context: BrowserContext, call_server: Server
) -> None:
    """Alice rings Bob and Carol over REST; Bob declines, Carol is busy: the calls card
    shows the call, each callee's own outcome and a link to the call's session."""
    url = call_server.url
    made = httpx.post(
        f"{url}/v1/calls",
        json={"callees": ["bob", "carol"], "media": "audio"},
        headers=call_server.headers("alice"),
        timeout=30,
    )
    assert made.status_code == 200, made.text
    call = made.json()["call"]
    for user, reason in (("bob", None), ("carol", "busy")):
        answer = httpx.post(
            f"{url}/v1/calls/{call['callId']}/decline",
            json={} if reason is None else {"reason": reason},
            headers=call_server.headers(user),
            timeout=30,
        )
        assert answer.status_code == 200, answer.text
    (record,) = admin_get(call_server, "/v1/calls")["calls"]
    page = context.new_page()
    sign_in(page, call_server)
    row = page.locator(f'#calls tr[data-call-id="{call["callId"]}"]')
    expect(row.locator("td").nth(1)).to_have_text("alice")
    expect(row.locator(".callee")).to_have_text(["bob declined", "carol busy"])
    expect(row.locator("td").nth(4)).to_contain_text(record["state"])
    expect(row.locator("a")).to_have_attribute("href", f"#/session/{record['roomUuid']}")
    shoot(page.locator("#calls"), str(ARTIFACTS / "dashboard-calls.png"))


def test_the_dashboard_needs_the_admin_signature(context: BrowserContext, call_server: Server):
    """A member's own userSig cannot open the dashboard; the page says why."""
    page = context.new_page()
    sign_in(page, call_server, user="alice")
    expect(page.locator("#signin .error")).to_contain_text("10005")
    assert page.evaluate("sessionStorage.length") == 0
    response = httpx.get(f"{call_server.url}/v1/admin/sessions", timeout=30)
    assert response.status_code == 401 and response.json()["errorCode"] == 10005


def test_what_is_left_goes_by_beacon_when_the_page_unloads(
    context: BrowserContext, call_server: Server, room: int
) -> None:
    """Lines still queued when the tab navigates away arrive through sendBeacon."""
    headers = {
        "X-TAvKit-SdkAppId": str(call_server.app_id),
        "X-TAvKit-UserId": "carol",
        "X-TAvKit-UserSig": call_server.sig("carol"),
    }
    entered = httpx.post(f"{call_server.url}/v1/rooms/{room}/enter", headers=headers, timeout=30)
    room_uuid = entered.json()["roomUuid"]
    page = context.new_page()
    page.goto(f"{call_server.url}/tavkit/demo/embed.html")
    page.evaluate(
        """async ([credentials, roomUuid]) => {
            const { Reporter } = await import("/tavkit/reporter.js");
            const reporter = new Reporter({ credentials, roomUuid,
                tuning: { flushInterval: 3600000, sampleInterval: 3600000 } });
            reporter.start();
            for (let i = 0; i < 5; i += 1) reporter.log("warn", "unsent", { i });
        }""",
        [
            {
                "sdkAppId": call_server.app_id,
                "userId": "carol",
                "userSig": call_server.sig("carol"),
            },
            room_uuid,
        ],
    )
    page.goto("about:blank")

    def beaconed() -> list[dict[str, Any]]:
        logs = admin_get(call_server, f"/v1/sessions/{room_uuid}/logs")["logs"]
        return [line for line in logs if line["event"] == "unsent"]

    lines = wait_for(beaconed, "the beacon's lines")
    assert [line["data"]["i"] for line in lines] == [0, 1, 2, 3, 4]
    assert {line["userId"] for line in lines} == {"carol"}


def test_the_reporter_stays_bounded_and_quiet_when_the_server_is_gone(
    context: BrowserContext, call_server: Server
) -> None:
    """With no server to talk to, the reporter drops its oldest items, counts, never throws."""
    page = context.new_page()
    page.goto(f"{call_server.url}/tavkit/demo/embed.html")
    stats = page.evaluate(
        """async () => {
            const { Reporter } = await import("/tavkit/reporter.js");
            const reporter = new Reporter({
                server: "http://127.0.0.1:9", // discard port: nothing listens
                credentials: { sdkAppId: 1, userId: "x", userSig: "y" },
                roomUuid: "00000000-0000-4000-8000-000000000000",
                getPeers: () => { throw new Error("broken callback"); },
                tuning: { maxQueue: 20, timeout: 1000, backoffMin: 10 },
            });
            for (let i = 0; i < 50; i += 1) reporter.log("info", "tick", { i });
            reporter.log("error", "weird", { error: { module: "nope", errorCode: "x" } });
            await reporter.sample();
            const flushed = await reporter.flush();
            return { ...reporter.stats, flushed, queued: reporter.queue.length };
        }"""
    )
    assert stats["flushed"] is False
    assert stats["queued"] == 20 and stats["dropped"] == 31
    assert stats["failed"] >= 2 and stats["sent"] == 0


def _artifact(name: str) -> Any:
    ARTIFACTS.mkdir(exist_ok=True)
    return ARTIFACTS / name
