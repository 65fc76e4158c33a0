"""Every way a rung call ends, between tabs and Python clients, with its record and webhooks.

Each test rings through one real server (shared by the module, so users are named
afresh per test) whose app delivers its webhooks to a real receiver
(:class:`tavkit.testing.webhooks.WebhookReceiver`, which checks every delivery with
:func:`tavkit.webhooks.verify`). A test drives the call the way a user does - the
tab's incoming screen, its "calling…" screen, the Python client's invitations and call
handle - then reads the caller's ``GET /v1/calls`` record (state, end reason, each
callee's outcome) and the call's webhook events, in the order they arrived.

Directions: ``tab→tab``, ``tab→py`` and ``py→tab`` (caller→callee). Cells covered
elsewhere are not repeated here:

* ring, accept, talk, caller hangs up: tab→tab in ``test_call_browsers.py``, py→tab in
  ``test_calls.py`` (both with the call's journal timeline, the events the webhooks
  carry), py→py in ``tests/client/test_calls.py``; tab→py below;
* decline: tab→tab in ``test_call_browsers.py``, tab→py in ``test_calls.py``; py→tab
  below.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import queue
import time
from collections.abc import Callable, Iterator
from dataclasses import replace
from typing import Any

import httpx
import pytest
from playwright.sync_api import BrowserContext

from tavkit.client.calls import Invitation, OutgoingCall
from tavkit.errors import ServerCode, ServerError
from tavkit.server import AppConfig, Settings
from tavkit.testing.server import (
    FAST_TIMERS,
    TavkitServer,
    drop_database,
    make_database,
    random_key,
)
from tavkit.testing.webhooks import WebhookReceiver

from .pages import CALL_SCRIPT, CALL_SERVER_SETTINGS, CallPage
from .test_calls import call_events, screen, wait_event
from .test_python_interop import WAIT, KitThread

pytestmark = pytest.mark.browser

RING_FOR = 3.0
"""Seconds a call rings before it times out (the server's default is 30)."""

DIRECTIONS = ["tab→tab", "tab→py", "py→tab"]

_names = itertools.count(1)


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[TavkitServer]:
    """One real server (SQLite, loopback ICE) for the module, delivering its webhooks."""
    directory = tmp_path_factory.mktemp("outcomes")
    database = make_database(directory)
    receiver = WebhookReceiver()
    settings = Settings(
        host="127.0.0.1",
        port=0,
        data_dir=directory / "data",
        database_url=database.url,
        database_schema=database.schema,
        apps=(AppConfig(1400000001, random_key()),),
        admin_key=random_key(),
        webhook_url=receiver.url,
        webhook_secret=receiver.secret,
        **FAST_TIMERS,
    )
    try:
        running = TavkitServer(replace(settings, **CALL_SERVER_SETTINGS), database, receiver)
        try:
            yield running
        finally:
            running.stop()
    finally:
        receiver.close()
        drop_database(database)


class Tab:
    """A user in a ``<tavkit-call>`` tab: listens, calls, and answers on its screens."""

    def __init__(self, context: BrowserContext, server: TavkitServer, user_id: str) -> None:
        self.server = server
        self.user_id = user_id
        self.page = CallPage(context.new_page(), server.url, user_id)

    def _open(self, method: str, **extra: Any) -> Any:
        options = {"sdkAppId": self.server.app_id, "userId": self.user_id}
        options["userSig"] = self.server.sig(self.user_id)
        return self.page.page.evaluate(CALL_SCRIPT, [{**options, **extra}, method])

    def listen(self) -> None:
        """Wait for calls: each shows the incoming screen."""
        self._open("listen")

    def call(self, callees: list[str]) -> str:
        """Ring ``callees`` (the "calling…" screen shows); the call's id."""
        return str(self._open("call", callees=callees, media="video", timeout=RING_FOR))

    def press(self, button: str) -> None:
        """Press Accept, Decline or Cancel on the call screen."""
        if button != "Cancel":
            wait_event(self.page, "onCallReceived")
        screen(self.page).get_by_role("button", name=button).click()

    def hangup(self) -> None:
        """The element's hang-up (the caller's ends the call for everyone)."""
        self.page.call("(el) => el.hangup()")

    def hears(self, event: str) -> None:
        """Wait until onCallListener heard ``event``."""
        wait_event(self.page, event)

    def heard(self) -> list[str]:
        """The onCallListener events, by name, in order."""
        return call_events(self.page)

    def talks_with(self, other: str) -> None:
        """Wait until the tab is connected to ``other`` and renders its video."""
        self.page.wait_connected(other)
        assert self.page.video_frames(other, frames=5)["last"] > 0

    def left(self) -> None:
        """Wait until the call screen is gone and the element is out of the room."""
        screen(self.page).wait_for(state="hidden", timeout=WAIT * 1000)
        self.page.page.wait_for_function(
            "() => ['idle', 'ended'].includes(document.getElementById('call').state)",
            timeout=WAIT * 1000,
            polling=100,
        )

    def close(self) -> None:
        """Close the tab."""
        self.page.page.close()


RESULT_OF = {
    "onCallBegin": "accepted",
    "onUserReject": "declined",
    "onUserNoResponse": "timeout",
    "onUserLineBusy": "busy",
    "onCallCancelled": "cancelled",
}
"""A caller's onCallListener event -> what the Python caller's ``result()`` says."""


class Py:
    """A user in a Python client: ``listen()`` invitations or ``call()`` with a handle."""

    def __init__(self, server: TavkitServer, user_id: str) -> None:
        self.server = server
        self.user_id = user_id
        self.peer = KitThread(server, user_id)
        self.invitations: queue.Queue[Invitation] = queue.Queue()
        self.rung: Invitation | None = None
        self.handle: OutgoingCall | None = None
        self._listening: asyncio.Task[None] | None = None

    def _creds(self) -> dict[str, Any]:
        return {
            "sdk_app_id": self.server.app_id,
            "user_id": self.user_id,
            "user_sig": self.server.sig(self.user_id),
        }

    def listen(self) -> None:
        """Iterate ``TAvKit.listen()`` in the background, queueing each invitation."""

        async def follow() -> None:
            async for invitation in self.peer.kit.listen(**self._creds()):
                self.invitations.put(invitation)

        async def start() -> asyncio.Task[None]:
            return asyncio.get_running_loop().create_task(follow())

        self._listening = self.peer.run(start())

    def call(self, callees: list[str]) -> str:
        """Ring ``callees`` (the client waits in the call's room); the call's id."""
        call = self.peer.kit.call(
            callees=callees, media="video", ring_timeout=RING_FOR, **self._creds()
        )
        self.handle = self.peer.run(call)
        return self.handle.call_id

    def press(self, button: str) -> None:
        """Accept or Decline the invitation ringing, or Cancel the call made."""
        if button == "Cancel":
            assert self.handle is not None
            self.peer.run(self.handle.cancel())
            return
        invitation = self._invitation()
        self.peer.run(invitation.accept() if button == "Accept" else invitation.decline())

    def hangup(self) -> None:
        """Hang up the call made (it ends for everyone)."""
        assert self.handle is not None
        self.peer.run(self.handle.hangup())

    def hears(self, event: str) -> None:
        """What Python shows for ``event``: the caller's ``result()``; for a callee, the
        invitation (onCallReceived), its accept having returned (onCallBegin), ``listen()``
        ending with the call (onCallEnd), or an invitation no longer answerable (the call
        cancelled or timed out: 14003)."""
        if self.handle is not None:
            assert self.peer.run(self.handle.result()) == RESULT_OF[event]
        elif event == "onCallReceived":
            self._invitation()
        elif event == "onCallBegin":
            assert self.rung is not None and self.rung.call.state == "accepted"
        elif event == "onCallEnd":
            listening = self._listening
            assert listening is not None
            self.peer.run(_until(listening.done))
            assert self.peer.kit.closed
        else:
            with pytest.raises(ServerError) as refused:
                self.peer.run(self._invitation().accept())
            assert refused.value.code is ServerCode.ROOM_CLOSED

    def talks_with(self, other: str) -> None:
        """Wait until the client decodes ``other``'s video and audio."""
        self.peer.wait_frames(other, video=5, audio=10)

    def left(self) -> None:
        """Wait until the client is out of the call's room (a callee never in it is)."""
        if self.handle is not None:
            self.peer.run(_until(lambda: self.peer.kit.closed))

    def _invitation(self) -> Invitation:
        if self.rung is None:
            self.rung = self.invitations.get(timeout=WAIT)
        return self.rung

    def close(self) -> None:
        """Stop listening, let go of the call's handle, hang up."""

        async def stop() -> None:
            if self._listening is not None:
                self._listening.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await self._listening
            if self.handle is not None:
                await self.handle.aclose()

        try:
            self.peer.run(stop())
        finally:
            self.peer.close()


async def _until(condition: Callable[[], bool]) -> None:
    async with asyncio.timeout(WAIT):
        while not condition():  # noqa: ASYNC110 - these states have no event to await
            await asyncio.sleep(0.05)


Person = Tab | Py


@pytest.fixture
def people(context: BrowserContext, server: TavkitServer) -> Iterator[Callable[[str, str], Any]]:
    """Make users: ``people("tab", "alice")`` or ``people("py", "bob")``; each closed after
    the test. Names get a number, so no test finds a user still busy from another."""
    made: list[Person] = []

    def make(kind: str, name: str) -> Any:
        user_id = f"{name}{next(_names)}"
        person: Person = Tab(context, server, user_id) if kind == "tab" else Py(server, user_id)
        made.append(person)
        return person

    try:
        yield make
    finally:
        for person in reversed(made):
            person.close()


def pair(people: Callable[[str, str], Any], direction: str) -> tuple[Any, Any]:
    """The caller and the (listening) callee of ``direction`` ("tab→py": a tab calls Python)."""
    caller_kind, callee_kind = direction.split("→")
    caller, callee = people(caller_kind, "caller"), people(callee_kind, "callee")
    callee.listen()
    return caller, callee


def record(server: TavkitServer, caller: str, call_id: str) -> dict[str, Any]:
    """The call in the caller's ``GET /v1/calls``, with each callee's outcome by userId."""
    answer = httpx.get(f"{server.url}/v1/calls", headers=server.headers(caller))
    assert answer.status_code == 200, answer.text
    found: dict[str, Any] = next(c for c in answer.json()["calls"] if c["callId"] == call_id)
    found["outcomes"] = {c["userId"]: c["outcome"] for c in found["callees"]}
    return found


def webhooks(server: TavkitServer, call_id: str, expected: list[str]) -> list[dict[str, Any]]:
    """The call's webhook events once ``len(expected)`` came (verified, each id once, in
    arrival order); asserts their types are ``expected``, in journal order, all signed."""
    receiver = server.webhooks
    assert receiver is not None

    def of_call() -> list[dict[str, Any]]:
        return [e for e in receiver.events if e["data"].get("callId") == call_id]

    deadline = time.monotonic() + WAIT
    while len(of_call()) < len(expected) and time.monotonic() < deadline:
        time.sleep(0.05)
    events = of_call()
    assert [e["type"] for e in events] == expected
    assert [e["id"] for e in events] == sorted(e["id"] for e in events)
    assert all(d.verified for d in receiver.deliveries)  # tavkit.webhooks.verify passed
    return events


@pytest.mark.parametrize("direction", ["tab→py"])
def test_ring_accept_talk_and_the_callers_hangup_ends_it_for_both(
    people: Any, server: TavkitServer, direction: str
) -> None:
    """The callee accepts and they see and hear each other; the caller's hang-up ends the
    call for both: ended (hangup), the talk time kept, ringing → accepted → ended."""
    caller, callee = pair(people, direction)
    call_id = caller.call([callee.user_id])
    callee.press("Accept")
    caller.hears("onCallBegin")
    caller.talks_with(callee.user_id)
    callee.talks_with(caller.user_id)
    caller.hangup()
    callee.hears("onCallEnd")
    caller.left()
    found = record(server, caller.user_id, call_id)
    assert (found["state"], found["endReason"]) == ("ended", "hangup")
    assert found["outcomes"] == {callee.user_id: "accepted"}
    assert found["callees"][0]["duration"] is not None
    events = webhooks(server, call_id, ["call.ringing", "call.accepted", "call.ended"])
    assert (events[1]["data"]["userId"], events[2]["data"]["reason"]) == (callee.user_id, "hangup")


@pytest.mark.parametrize("direction", ["py→tab"])
def test_a_declined_call_ends_for_the_caller(
    people: Any, server: TavkitServer, direction: str
) -> None:
    """The callee presses Decline: the caller hears it and leaves the room; declined."""
    caller, callee = pair(people, direction)
    call_id = caller.call([callee.user_id])
    callee.press("Decline")
    caller.hears("onUserReject")
    caller.left()
    assert callee.heard() == ["onCallReceived", "onUserReject"]
    found = record(server, caller.user_id, call_id)
    assert (found["state"], found["outcomes"]) == ("declined", {callee.user_id: "declined"})
    webhooks(server, call_id, ["call.ringing", "call.declined"])


@pytest.mark.parametrize("direction", DIRECTIONS)
def test_an_unanswered_call_times_out(people: Any, server: TavkitServer, direction: str) -> None:
    """Nobody answers within the ring time: both sides hear no response and the ringing
    stops; timeout, with the callee's call.timeout."""
    caller, callee = pair(people, direction)
    call_id = caller.call([callee.user_id])
    callee.hears("onCallReceived")
    caller.hears("onUserNoResponse")
    callee.hears("onUserNoResponse")
    caller.left()
    callee.left()
    found = record(server, caller.user_id, call_id)
    assert (found["state"], found["outcomes"]) == ("timeout", {callee.user_id: "timeout"})
    events = webhooks(server, call_id, ["call.ringing", "call.timeout"])
    assert events[1]["data"]["userId"] == callee.user_id


@pytest.mark.parametrize("direction", DIRECTIONS)
def test_the_caller_cancels_before_an_answer(
    people: Any, server: TavkitServer, direction: str
) -> None:
    """The caller cancels while it rings: the callee stops ringing; cancelled for both."""
    caller, callee = pair(people, direction)
    call_id = caller.call([callee.user_id])
    callee.hears("onCallReceived")
    caller.press("Cancel")
    caller.hears("onCallCancelled")
    callee.hears("onCallCancelled")
    caller.left()
    callee.left()
    found = record(server, caller.user_id, call_id)
    assert (found["state"], found["endReason"]) == ("cancelled", "cancelled")
    assert found["outcomes"] == {callee.user_id: "cancelled"}
    events = webhooks(server, call_id, ["call.ringing", "call.cancelled"])
    assert events[1]["data"]["callees"] == [callee.user_id]


@pytest.mark.parametrize("direction", DIRECTIONS)
def test_a_callee_already_in_a_call_is_busy(
    people: Any, server: TavkitServer, direction: str
) -> None:
    """The callee is in another call: the caller hears busy at once and leaves; the callee
    hears nothing of it (it was never rung) and stays in its call."""
    caller, callee = pair(people, direction)
    other = f"other{next(_names)}"
    rung = httpx.post(  # someone else's call, which the callee accepts
        f"{server.url}/v1/calls",
        headers=server.headers(other),
        json={"callees": [callee.user_id], "media": "audio"},
    )
    assert rung.status_code == 200, rung.text
    callee.press("Accept")
    callee.hears("onCallBegin")
    call_id = caller.call([callee.user_id])
    caller.hears("onUserLineBusy")
    caller.left()
    found = record(server, caller.user_id, call_id)
    assert (found["state"], found["outcomes"]) == ("busy", {callee.user_id: "busy"})
    webhooks(server, call_id, ["call.ringing", "call.busy"])
    if isinstance(callee, Tab):
        callee.page.wait_state("waiting")  # in the other call's room
        assert callee.heard() == ["onCallReceived", "onCallBegin"]  # of the other call only
    else:
        assert callee.invitations.empty() and not callee.peer.kit.closed
    hung = httpx.post(
        f"{server.url}/v1/calls/{rung.json()['call']['callId']}/hangup",
        headers=server.headers(other),
    )
    assert hung.status_code == 200, hung.text


@pytest.mark.parametrize("caller_kind", ["tab", "py"])
def test_a_group_call_with_one_accept_and_one_decline_ends_for_all_at_the_callers_hangup(
    people: Any, server: TavkitServer, caller_kind: str
) -> None:
    """A caller rings a tab and a Python client; one declines, the other accepts and they
    talk; the caller hangs up and the call ends for everyone: each callee's outcome in the
    record, ringing → declined → accepted → ended."""
    caller = people(caller_kind, "caller")
    tab, py = people("tab", "tabcallee"), people("py", "pycallee")
    tab.listen()
    py.listen()
    # A Python caller's accepting callee is the tab, a tab caller's is Python.
    accepting, declining = (py, tab) if caller_kind == "tab" else (tab, py)
    call_id = caller.call([tab.user_id, py.user_id])
    declining.press("Decline")
    if isinstance(declining, Tab):  # its decline is through before the other accepts
        declining.hears("onUserReject")
    accepting.press("Accept")
    caller.hears("onCallBegin")
    caller.talks_with(accepting.user_id)
    accepting.talks_with(caller.user_id)
    caller.hangup()
    accepting.hears("onCallEnd")
    accepting.left()
    caller.left()
    found = record(server, caller.user_id, call_id)
    assert (found["state"], found["endReason"]) == ("ended", "hangup")
    assert found["outcomes"] == {declining.user_id: "declined", accepting.user_id: "accepted"}
    events = webhooks(
        server, call_id, ["call.ringing", "call.declined", "call.accepted", "call.ended"]
    )
    assert [e["data"]["userId"] for e in events[1:3]] == [declining.user_id, accepting.user_id]
