"""A Playwright page holding one ``<tavkit-call>``, with what the tests look at.

The page is ``/tavkit/demo/embed.html`` from the server under test, so the
component, the REST API and the socket share one loopback origin, as in production.
An init script (``INSTRUMENT``) counts calls to ``getUserMedia``, ``fetch``,
``WebSocket`` and ``RTCPeerConnection`` (passing each through unchanged) and records
every ``tavkit:*`` DOM event, so a test can prove that something did *not* happen.
"""

from __future__ import annotations

import ipaddress
import json
import shutil
from collections.abc import Callable
from pathlib import Path
from typing import Any, Protocol

from playwright.sync_api import Locator, Page
from playwright.sync_api import TimeoutError as PlaywrightTimeout

ARTIFACTS = Path(__file__).resolve().parents[2] / "test-artifacts"
# Milliseconds between checks of a wait_for_function. Playwright's default polls on
# requestAnimationFrame, which a busy headless browser runs rarely for pages that
# are not being painted; a timer keeps every wait prompt.
POLL = 100

# Seconds. The ordinary server keeps the production timeout, so a page starved of CPU
# on a busy test machine is not dropped; the short one is for the tests about
# vanished tabs, which wait for that timeout.
HEARTBEAT_INTERVAL = 1.0
HEARTBEAT_TIMEOUT = 15.0
SHORT_HEARTBEAT_TIMEOUT = 5.0

CALL_SERVER_SETTINGS = {
    "heartbeat_interval": HEARTBEAT_INTERVAL,
    "heartbeat_timeout": HEARTBEAT_TIMEOUT,
    "ice_allowed_networks": (ipaddress.ip_network("127.0.0.0/8"),),
}

EVENTS = [
    "tavkit:joined",
    "tavkit:user-enter",
    "tavkit:user-leave",
    "tavkit:user-info",
    "tavkit:muted",
    "tavkit:camera",
    "tavkit:switch-camera",
    "tavkit:handup",
    "tavkit:error",
    "tavkit:user-connection",
    "tavkit:rejoining",
    "tavkit:rejoined",
    "tavkit:device",
    "tavkit:screen-share",
    "tavkit:remote-share",
]

INSTRUMENT = """
(() => {
  const tv = (window.__tv = {
    gum: 0, fetches: [], sockets: 0, pcs: 0,
    events: [], errors: [], muted: [], switched: [], handups: 0, userInfo: [],
  });
  const md = navigator.mediaDevices;
  if (md && md.getUserMedia) {
    const open = md.getUserMedia.bind(md);
    md.getUserMedia = (constraints) => { tv.gum += 1; return open(constraints); };
  }
  const realFetch = window.fetch;
  window.fetch = (...args) => { tv.fetches.push(String(args[0])); return realFetch(...args); };
  const RealSocket = window.WebSocket;
  window.WebSocket = class extends RealSocket {
    constructor(...args) { super(...args); tv.sockets += 1; }
  };
  const RealPC = window.RTCPeerConnection;
  window.RTCPeerConnection = class extends RealPC {
    constructor(...args) { super(...args); tv.pcs += 1; }
  };
  for (const name of __EVENTS__) {
    document.addEventListener(name, (event) => {
      const detail = { ...(event.detail || {}) };
      delete detail.callback;
      const { type, composed, bubbles } = event;
      tv.events.push({ type, detail, composed, bubbles });
    });
  }
})();
""".replace("__EVENTS__", json.dumps(EVENTS))

# A user whose browser refuses the camera. Headless Chromium cannot show (or be made
# to answer) a permission prompt, so the refusal is what getUserMedia itself does
# when a user clicks "Block": reject with a NotAllowedError DOMException.
DENY_MEDIA = """
(() => {
  const deny = () => Promise.reject(new DOMException("Permission denied", "NotAllowedError"));
  Object.defineProperty(navigator.mediaDevices, "getUserMedia", { value: deny });
})();
"""

_START = """
async (options) => {
  const tv = window.__tv;
  const call = document.getElementById("call");
  options.listener = {
    onUserInfoListener(userIds, callback) {
      tv.userInfo.push(userIds);
      callback(userIds.map((userId) => ({ userId, userName: "Name of " + userId })));
    },
    onMutedListener(muted) { tv.muted.push(muted); },
    onSwitchCameraListener(front) { tv.switched.push(front); },
    onHandupListener() { tv.handups += 1; },
    onErrorListener(error) { tv.errors.push(error); },
  };
  return await call.start(options);
}
"""

_FRAMES = """
async ([userId, wanted, timeoutMs]) => {
  const deadline = Date.now() + timeoutMs;
  const call = document.getElementById("call");
  const selector = `video[data-user-id="${CSS.escape(userId)}"]`;
  let video = null;
  while (!(video = call.shadowRoot.querySelector(selector)) || !video.srcObject) {
    if (Date.now() > deadline) throw new Error(`no video element for ${userId}`);
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
  return await new Promise((resolve, reject) => {
    const times = [];
    const timer = setTimeout(
      () => reject(new Error(`${times.length} frames from ${userId}`)),
      Math.max(1, deadline - Date.now()),
    );
    const tick = (_now, meta) => {
      times.push(meta.mediaTime);
      if (times.length >= wanted) {
        clearTimeout(timer);
        resolve({ frames: times.length, first: times[0], last: times.at(-1),
                  width: video.videoWidth, height: video.videoHeight });
      } else {
        video.requestVideoFrameCallback(tick);
      }
    };
    video.requestVideoFrameCallback(tick);
  });
}
"""

_AUDIO_SAMPLES = """
async (userId) => {
  const pc = document.getElementById("call").peerConnections().get(userId);
  if (!pc) return -1;
  let total = 0;
  for (const report of (await pc.getStats()).values()) {
    if (report.type === "inbound-rtp" && report.kind === "audio") {
      total += report.totalSamplesReceived || 0;
    }
  }
  return total;
}
"""


_FRAMES_DECODED = """
async (userId) => {
  const pc = document.getElementById("call").peerConnections().get(userId);
  if (!pc) return -1;
  let total = 0;
  for (const report of (await pc.getStats()).values()) {
    if (report.type === "inbound-rtp" && report.kind === "video") {
      total += report.framesDecoded || 0;
    }
  }
  return total;
}
"""


class Server(Protocol):
    """What the pages need of ``tests/conftest.py``'s RunningServer."""

    url: str

    @property
    def app_id(self) -> int: ...

    def sig(self, user_id: str, *, expire: int = ..., app: Any = ...) -> str: ...

    def admin_sig(self, *, expire: int = ..., app: Any = ...) -> str: ...

    def admin_headers(self) -> dict[str, str]: ...

    def headers(self, user_id: str) -> dict[str, str]: ...


class CallPage:
    """One browser tab with a ``<tavkit-call id="call">`` from ``base_url``."""

    def __init__(self, page: Page, base_url: str, user_id: str) -> None:
        self.page = page
        self.base_url = base_url
        self.user_id = user_id
        page.goto(f"{base_url}/tavkit/demo/embed.html")
        page.wait_for_function("customElements.get('tavkit-call') !== undefined", polling=POLL)

    def start(self, room_id: Any, **options: Any) -> Any:
        """Call ``start()`` with recording listeners; returns what ``start()`` resolves to."""
        opts = {"userId": self.user_id, "roomId": room_id, **options}
        return self.page.evaluate(_START, opts)

    def join(self, server: Server, room_id: int, **extra: Any) -> Any:
        """Start the call with a valid userSig for this page's user."""
        return self.start(
            room_id, sdkAppId=server.app_id, userSig=server.sig(self.user_id), **extra
        )

    def call(self, js: str, arg: Any = None) -> Any:
        """Evaluate ``js``, a function of (element, arg), against the ``<tavkit-call>``."""
        return self.page.evaluate(f"([arg]) => ({js})(document.getElementById('call'), arg)", [arg])

    def tv(self, key: str) -> Any:
        """A value the instrumentation recorded (``errors``, ``events``, ``gum``, ...)."""
        return self.page.evaluate(f"window.__tv[{json.dumps(key)}]")

    def events(self, kind: str) -> list[dict[str, Any]]:
        """Details of the recorded DOM events of type ``kind`` (e.g. ``tavkit:user-leave``)."""
        return [e["detail"] for e in self.tv("events") if e["type"] == kind]

    def state(self) -> str:
        """The element's call state."""
        return str(self.call("(el) => el.state"))

    def wait_state(self, state: str, timeout: float = 15_000) -> None:
        """Wait until the element's state is ``state``."""
        self.page.wait_for_function(
            "(s) => document.getElementById('call').state === s",
            arg=state,
            timeout=timeout,
            polling=POLL,
        )

    def peer_states(self) -> dict[str, str]:
        """userId → "connectionState/signalingState/ICE state" of each peer connection."""
        return dict(
            self.page.evaluate(
                """async () => {
                    const out = [];
                    const pcs = document.getElementById('call').peerConnections();
                    for (const [id, pc] of pcs) {
                        let dtls = '?';
                        for (const r of (await pc.getStats()).values()) {
                            if (r.type === 'transport') dtls = r.dtlsState;
                        }
                        const s = [pc.connectionState, pc.signalingState, pc.iceConnectionState];
                        out.push([id, `${s.join('/')}/dtls:${dtls}`]);
                    }
                    return out;
                }"""
            )
        )

    def wait_connected(self, user_id: str, timeout: float = 30_000) -> None:
        """Wait until the peer connection to ``user_id`` is connected."""
        try:
            self._wait_connected(user_id, timeout)
        except PlaywrightTimeout:
            raise AssertionError(
                f"{self.user_id} never connected to {user_id}: {self.peer_states()}, "
                f"state {self.state()}, errors {self.tv('errors')}, events {self.tv('events')}"
            ) from None

    def _wait_connected(self, user_id: str, timeout: float) -> None:
        self.page.wait_for_function(
            """(id) => {
                const pc = document.getElementById('call').peerConnections().get(id);
                return pc && pc.connectionState === 'connected';
            }""",
            arg=user_id,
            timeout=timeout,
            polling=POLL,
        )

    def video_frames(self, user_id: str, frames: int = 10, timeout: float = 20_000) -> Any:
        """Wait for ``frames`` rendered frames of ``user_id``'s video; their media times."""
        return self.page.evaluate(_FRAMES, [user_id, frames, timeout])

    def audio_samples(self, user_id: str) -> int:
        """Audio samples received from ``user_id`` so far (inbound-rtp getStats)."""
        return int(self.page.evaluate(_AUDIO_SAMPLES, user_id))

    def wait_audio_rising(self, user_id: str, timeout: float = 15_000) -> None:
        """Wait until audio samples from ``user_id`` arrive, then until more arrive."""
        self.page.wait_for_function(
            f"async (id) => ({_AUDIO_SAMPLES})(id).then((n) => n > 0)",
            arg=user_id,
            timeout=timeout,
            polling=POLL,
        )
        first = self.audio_samples(user_id)
        self.page.wait_for_function(
            f"async ([id, first]) => ({_AUDIO_SAMPLES})(id).then((n) => n > first)",
            arg=[user_id, first],
            timeout=timeout,
            polling=POLL,
        )

    def wait_video_decoding(self, user_id: str, frames: int = 10, timeout: float = 60_000) -> None:
        """Wait until ``frames`` more video frames from ``user_id`` have been decoded.

        Unlike :meth:`video_frames` this does not need the page to be painted, so it
        holds on a machine too busy to composite four call UIs at frame rate.
        """
        self.page.wait_for_function(
            f"async (id) => ({_FRAMES_DECODED})(id).then((n) => n > 0)",
            arg=user_id,
            timeout=timeout,
            polling=POLL,
        )
        first = int(self.page.evaluate(_FRAMES_DECODED, user_id))
        self.page.wait_for_function(
            f"async ([id, first]) => ({_FRAMES_DECODED})(id).then((n) => n >= first)",
            arg=[user_id, first + frames],
            timeout=timeout,
            polling=POLL,
        )

    def tile(self, user_id: str) -> Locator:
        """The tile locator of ``user_id`` (Playwright's CSS pierces the open shadow root)."""
        return self.page.locator(f'tavkit-call .tv-tile[data-user-id="{user_id}"]')

    def tile_ids(self) -> list[str]:
        """userIds of the camera tiles on screen, local first (screen tiles are apart)."""
        return list(
            self.call(
                """(el) => [...el.shadowRoot.querySelectorAll('.tv-tile[data-user-id]')]
                    .sort((a, b) => Number(a.style.order) - Number(b.style.order))
                    .map((t) => t.dataset.userId)"""
            )
        )

    def layout(self) -> str:
        """The layout in use: solo, pip, grid, or share (a screen large, cameras small)."""
        return str(self.call("(el) => el.shadowRoot.querySelector('.tv-call').dataset.layout"))

    def screenshot(self, name: str) -> Path:
        """Save a screenshot under test-artifacts/ and return its path."""
        ARTIFACTS.mkdir(exist_ok=True)
        path = ARTIFACTS / name
        self.page.screenshot(path=str(path))
        return path


def joined_pair(
    open_call: Callable[..., CallPage], server: Server, room: int
) -> tuple[CallPage, CallPage]:
    """Alice, then Bob, in ``room``, each connected to the other."""
    alice = open_call("alice")
    assert alice.join(server, room) is True
    bob = open_call("bob")
    assert bob.join(server, room) is True
    alice.wait_connected("bob")
    bob.wait_connected("alice")
    return alice, bob


def keep(page: CallPage, name: str) -> None:
    """Save a screenshot for review, under test-artifacts/ and in /tmp."""
    shutil.copy(page.screenshot(name), f"/tmp/{name}")


CALL_SCRIPT = """
async ([options, method]) => {
  const call = document.getElementById("call");
  window.__calls = [];
  options.listener = { onCallListener(event) { window.__calls.push(event); } };
  const answer = await call[method](options);
  return answer ? answer.callId : null;
}
"""
"""``call[method](options)`` on the page's <tavkit-call> (``call`` or ``listen``),
recording every onCallListener event in ``window.__calls``; the call's id, or null."""


# Runs after INSTRUMENT: keeps every description the page sends on its socket.
RECORD_SDP = """
(() => {
  const tv = window.__tv;
  tv.sdps = [];
  const send = WebSocket.prototype.send;
  WebSocket.prototype.send = function (data) {
    try {
      const frame = JSON.parse(data);
      const description = frame?.type === "signal" && frame.data?.description;
      if (description) tv.sdps.push([frame.to, description.type, description.sdp]);
    } catch {}
    return send.call(this, data);
  };
})();
"""
