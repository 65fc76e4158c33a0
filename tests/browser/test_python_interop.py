"""A Python client (aiortc) and a ``<tavkit-call>`` tab in one room, in both join orders.

The browser side is Debian's Chromium through this directory's fixtures; the Python
side is :class:`tavkit.client.TAvKit` running on its own event loop in a thread
(Playwright's sync API owns the test's thread). Both gather ICE candidates on
loopback only and the server relays nothing else.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import threading
from collections.abc import Callable, Coroutine
from typing import Any, TypeVar

import pytest

from tavkit.client import Listener, TAvKit, TestPattern

from .pages import CallPage, Server

pytestmark = pytest.mark.browser

T = TypeVar("T")
OpenCall = Callable[..., CallPage]
WAIT = 30.0


async def _poll(condition: Callable[[], bool]) -> None:
    """Wait (at most ``WAIT`` seconds) until ``condition()`` holds."""
    async with asyncio.timeout(WAIT):
        while not condition():  # noqa: ASYNC110 - the kit's counters have no event
            await asyncio.sleep(0.05)


class KitThread:
    """A TAvKit living on an event loop in a background thread, driven from sync code."""

    def __init__(self, server: Server, user_id: str) -> None:
        self.server = server
        self.user_id = user_id
        self.left: list[tuple[str, str]] = []
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, daemon=True)
        self._thread.start()
        self.kit: TAvKit = self.run(self._make())

    async def _make(self) -> TAvKit:
        return TAvKit(
            self.server.url,
            source=TestPattern(width=320, height=240, fps=15),
            host_addresses=["127.0.0.1"],
            video_bitrate=300_000,
        )

    def run(self, coro: Coroutine[Any, Any, T], timeout: float = WAIT) -> T:
        """Run ``coro`` on the kit's loop and return its result."""
        return self.submit(coro).result(timeout)

    def submit(self, coro: Coroutine[Any, Any, T]) -> concurrent.futures.Future[T]:
        """Start ``coro`` on the kit's loop without waiting for it."""
        return asyncio.run_coroutine_threadsafe(coro, self._loop)

    def in_loop(self, function: Callable[[], T]) -> T:
        """Call ``function`` on the kit's loop thread (the kit is not thread-safe)."""

        async def call() -> T:
            return function()

        return self.run(call())

    def join(self, room: int | None, **extra: Any) -> None:
        """Start the call in ``room`` (or ``str_room_id=`` in ``extra``) with a valid userSig."""
        outer = self

        class Recorder(Listener):
            def on_user_leave(self, user_id: str, reason: str) -> None:
                outer.left.append((user_id, reason))

        self.run(
            self.kit.start(
                sdk_app_id=self.server.app_id,
                user_id=self.user_id,
                user_sig=self.server.sig(self.user_id),
                room_id=room,
                listener=Recorder(),
                **extra,
            )
        )

    def wait_frames(self, user_id: str, video: int, audio: int) -> tuple[int, int]:
        """Wait until this many video and audio frames from ``user_id`` were decoded."""

        def enough() -> bool:
            stats = self.kit.peers_seen.get(user_id)
            return bool(stats and stats.video_frames >= video and stats.audio_frames >= audio)

        self.run(_poll(enough), WAIT + 5)
        stats = self.kit.peers_seen[user_id]
        return stats.video_frames, stats.audio_frames

    def close(self) -> None:
        """Hang up and stop the loop and its thread."""
        try:
            self.run(self.kit.aclose())
        finally:
            self._loop.call_soon_threadsafe(self._loop.stop)
            self._thread.join(10)
            self._loop.close()


@pytest.fixture
def python_peer(call_server: Server) -> Any:
    """A Python participant ``py`` on the call server, hung up after the test."""
    peer = KitThread(call_server, "py")
    try:
        yield peer
    finally:
        peer.close()


@pytest.mark.parametrize("first", ["python", "browser"])
def test_python_and_browser_exchange_audio_and_video(
    first: str, open_call: OpenCall, call_server: Server, room: int, python_peer: KitThread
) -> None:
    """Whoever joins first, the tab renders the Python video and hears its audio, and back."""
    if first == "python":
        python_peer.join(room)
        tab = open_call("web")
        assert tab.join(call_server, room) is True
    else:
        tab = open_call("web")
        assert tab.join(call_server, room) is True
        tab.wait_state("waiting")
        python_peer.join(room)

    tab.wait_connected("py")
    frames = tab.video_frames("py", frames=15)
    assert frames["last"] > frames["first"], frames
    assert (frames["width"], frames["height"]) == (320, 240)
    tab.wait_audio_rising("py")

    video, audio = python_peer.wait_frames("web", video=15, audio=25)
    assert video >= 15 and audio >= 25
    stats = python_peer.kit.peers_seen["web"]
    assert stats.connected and stats.width > 0
    assert python_peer.kit.errors == [] and tab.tv("errors") == []


def test_str_room_id_joins_the_python_member_s_string_room(
    open_call: OpenCall, call_server: Server, room: int, python_peer: KitThread
) -> None:
    """start({strRoomId}) meets a Python member in that string room, not in the numeric one."""
    python_peer.join(None, str_room_id=f"{room}#s")
    numeric = open_call("num")
    assert numeric.join(call_server, room) is True
    numeric.wait_state("waiting")  # alone: the Python member is in the other room
    tab = open_call("web")
    assert tab.join(call_server, None, strRoomId=f"{room}#s") is True
    tab.wait_connected("py")
    frames = tab.video_frames("py", frames=10)
    assert frames["last"] > frames["first"], frames
    python_peer.wait_frames("web", video=10, audio=10)
    assert any(f"/v1/str-rooms/{room}%23s/enter" in url for url in tab.tv("fetches"))
    label = tab.page.evaluate(
        "() => document.getElementById('call').shadowRoot.querySelector('.tv-room').textContent"
    )
    assert f'"{room}#s"' in label
    assert sorted(python_peer.kit.members) == ["web"]
    assert numeric.events("tavkit:joined")[-1]["members"] == [] and numeric.state() == "waiting"
    assert python_peer.kit.errors == [] and tab.tv("errors") == []


def test_browser_hangup_is_seen_by_the_python_client(
    open_call: OpenCall, call_server: Server, room: int, python_peer: KitThread
) -> None:
    """When the tab hangs up, the Python listener gets on_user_leave with reason exit."""
    python_peer.join(room)
    tab = open_call("web")
    assert tab.join(call_server, room) is True
    python_peer.wait_frames("web", video=5, audio=5)
    tab.call("(el) => el.hangup()")

    python_peer.run(_poll(lambda: ("web", "exit") in python_peer.left), WAIT + 5)
    assert python_peer.kit.members == []


_FINGERPRINT = """() => {
  const pc = document.getElementById('call').peerConnections().get('py');
  return pc.remoteDescription.sdp.match(/a=fingerprint:(.*)/)[1];
}"""


@pytest.mark.parametrize("newcomer", ["browser", "python"])
def test_the_offerer_renegotiates_and_media_flows_again(
    newcomer: str, open_call: OpenCall, call_server: Server, room: int, python_peer: KitThread
) -> None:
    """The tab's ICE restart or the Python offerer's rebuild: a new DTLS session with media."""
    tab = open_call("web")
    if newcomer == "browser":
        python_peer.join(room)
        assert tab.join(call_server, room) is True
    else:
        assert tab.join(call_server, room) is True
        tab.wait_state("waiting")
        python_peer.join(room)
    tab.wait_connected("py")
    python_peer.wait_frames("web", video=10, audio=10)
    before = tab.page.evaluate(_FINGERPRINT)

    if newcomer == "browser":
        tab.page.evaluate(
            "() => document.getElementById('call').peerConnections().get('py').restartIce()"
        )
        assert python_peer.in_loop(python_peer.kit.reconnect) == []  # not ours to repair
    else:
        assert python_peer.in_loop(python_peer.kit.reconnect) == ["web"]

    tab.page.wait_for_function(
        f"() => ({_FINGERPRINT})() !== {before!r}", timeout=WAIT * 1000, polling=100
    )
    tab.wait_connected("py")
    video = python_peer.kit.peers_seen["web"].video_frames
    python_peer.wait_frames("web", video=video + 15, audio=0)
    frames = tab.video_frames("py", frames=15)
    assert frames["last"] > frames["first"]
