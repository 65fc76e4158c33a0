"""Browser benchmark: time to first frame through <tavkit-call> against a bare page.

Run from the repository root::

    .venv/bin/python bench/ttff_browser.py [--runs 10] [--no-write]

Two headless Chromium tabs (Debian's ``/usr/bin/chromium``, the test suite's flags,
fake camera and microphone) call each other, over and over:

* **tavkit.** A real tavkit server (SQLite, a temporary data directory, a loopback
  port) serves ``/tavkit/demo/embed.html``. Tab A starts and waits in a fresh room;
  the clock runs from tab B's ``start()`` until B's ``<video data-user-id="a">``
  presents its first frame (``requestVideoFrameCallback``): REST enter, camera,
  socket, offer/answer through the server, ICE, DTLS, first keyframe, decode, paint.
* **bare.** The floor for the same browser: a minimal page and a minimal relay (a
  ``websockets`` server on port 0 that serves the page and forwards every message to
  the other tab). B opens the camera and the socket, creates the connection, adds its
  tracks, offers; A answers; candidates trickle; same first-frame clock.

Runs of the two alternate, so machine load hits both alike. The median, the p95 and
their ratios are printed and written into ``bench/RESULTS.md`` between the
``<!-- ttff_browser -->`` markers (other sections of that file are left alone).
"""

from __future__ import annotations

import argparse
import asyncio
import http
import os
import platform
import secrets
import statistics
import time
from typing import Any

from _common import p95, tavkit_server, write_section
from playwright.async_api import Browser, async_playwright
from websockets.asyncio.server import Server, ServerConnection, serve
from websockets.datastructures import Headers
from websockets.http11 import Request, Response

from tavkit.auth import gen_user_sig

APP_ID = 1400000078
CHROMIUM = "/usr/bin/chromium"
FLAGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--use-fake-device-for-media-stream=fps=30",
    "--use-fake-ui-for-media-stream",
    "--allow-loopback-in-peer-connection",
]
WAIT_MS = 60_000

# -- tavkit -------------------------------------------------------------------------------

# Resolves with the ms from start() to the first presented frame of `peer`'s video. The
# observer is set up before start() so the element the component creates is caught at
# once; requestVideoFrameCallback fires when its first frame is composited.
TAVKIT_TTFF = """
async ([options, peer, waitMs]) => {
  const call = document.getElementById("call");
  const root = call.shadowRoot;
  const selector = `video[data-user-id="${peer}"]`;
  let t0 = 0;
  const first = new Promise((resolve, reject) => {
    const hook = (video) => video.requestVideoFrameCallback(() => resolve(performance.now() - t0));
    const found = root.querySelector(selector);
    if (found) hook(found);
    else {
      const watch = new MutationObserver(() => {
        const video = root.querySelector(selector);
        if (video) { watch.disconnect(); hook(video); }
      });
      watch.observe(root, { childList: true, subtree: true });
    }
    setTimeout(() => reject(new Error("no frame from " + peer)), waitMs);
  });
  options.listener = { onErrorListener: (e) => console.warn("tavkit error", JSON.stringify(e)) };
  t0 = performance.now();
  call.start(options);
  return await first;
}
"""

TAVKIT_WAIT = """
async (options) => {
  const call = document.getElementById("call");
  return await call.start(options);
}
"""


async def ttff_tavkit(browser: Browser, url: str, key: str, room: int) -> float:
    """Milliseconds from tab B's start() to B's first presented frame of A."""
    context = await browser.new_context(viewport={"width": 640, "height": 480})
    try:
        a, b = await context.new_page(), await context.new_page()
        for page in (a, b):
            await page.goto(f"{url}/tavkit/demo/embed.html")
            await page.wait_for_function("!!customElements.get('tavkit-call')", polling=50)

        def options(user_id: str) -> dict[str, Any]:
            sig = gen_user_sig(APP_ID, key, user_id)
            return {"sdkAppId": APP_ID, "userId": user_id, "userSig": sig, "roomId": room}

        if await a.evaluate(TAVKIT_WAIT, options("a")) is not True:
            raise RuntimeError("tab A could not enter the room")
        return float(await b.evaluate(TAVKIT_TTFF, [options("b"), "a", WAIT_MS]))
    finally:
        await context.close()


# -- bare ---------------------------------------------------------------------------------

BARE_PAGE = """<!doctype html>
<meta charset="utf-8"><title>bare</title>
<video id="remote" autoplay playsinline muted style="width:320px;height:240px"></video>
<script>
// The least a page must do for the same call: camera, socket, one RTCPeerConnection,
// offer/answer and trickled candidates relayed by the server.
window.call = async (offerer, waitMs) => {
  const t0 = performance.now();
  const video = document.getElementById("remote");
  const first = new Promise((resolve, reject) => {
    video.requestVideoFrameCallback(() => resolve(performance.now() - t0));
    setTimeout(() => reject(new Error("no frame")), waitMs);
  });
  const ws = new WebSocket(`ws://${location.host}/ws`);
  const [stream] = await Promise.all([
    navigator.mediaDevices.getUserMedia({ audio: true, video: true }),
    new Promise((resolve) => (ws.onopen = resolve)),
  ]);
  const pc = new RTCPeerConnection({ iceServers: [] });
  const send = (data) => ws.send(JSON.stringify(data));
  pc.onicecandidate = ({ candidate }) => candidate && send({ candidate: candidate.toJSON() });
  pc.ontrack = ({ streams }) => { video.srcObject = streams[0]; };
  ws.onmessage = async ({ data }) => {
    const message = JSON.parse(data);
    if (message.description) {
      if (message.description.type === "offer") {
        for (const track of stream.getTracks()) pc.addTrack(track, stream);
        await pc.setRemoteDescription(message.description);
        await pc.setLocalDescription();
        send({ description: pc.localDescription.toJSON() });
      } else {
        await pc.setRemoteDescription(message.description);
      }
    } else if (message.candidate) {
      await pc.addIceCandidate(message.candidate);
    }
  };
  if (offerer) {
    for (const track of stream.getTracks()) pc.addTrack(track, stream);
    await pc.setLocalDescription();
    send({ description: pc.localDescription.toJSON() });
  }
  window.pc = pc;
  return offerer ? await first : 0;
};
</script>
"""


class Relay:
    """A websockets server that serves BARE_PAGE at / and relays /ws between tabs."""

    def __init__(self) -> None:
        self.peers: set[ServerConnection] = set()
        self.server: Server | None = None
        self.url = ""

    async def __aenter__(self) -> Relay:
        self.server = await serve(self._relay, "127.0.0.1", 0, process_request=self._page)
        port = next(iter(self.server.sockets)).getsockname()[1]
        self.url = f"http://127.0.0.1:{port}"
        return self

    async def __aexit__(self, *exc: object) -> None:
        assert self.server is not None
        self.server.close()
        await self.server.wait_closed()

    def _page(self, connection: ServerConnection, request: Request) -> Response | None:
        if request.path == "/ws":
            return None  # carry on with the WebSocket handshake
        body = BARE_PAGE.encode()
        headers = Headers({"Content-Type": "text/html; charset=utf-8"})
        headers["Content-Length"] = str(len(body))
        return Response(http.HTTPStatus.OK, "OK", headers, body)

    async def _relay(self, connection: ServerConnection) -> None:
        self.peers.add(connection)
        try:
            async for message in connection:
                for other in list(self.peers):
                    if other is not connection:
                        await other.send(message)
        finally:
            self.peers.discard(connection)


async def ttff_bare(browser: Browser, relay: Relay) -> float:
    """Milliseconds from the bare offerer's first line to its first presented frame."""
    context = await browser.new_context(viewport={"width": 640, "height": 480})
    try:
        a, b = await context.new_page(), await context.new_page()
        for page in (a, b):
            await page.goto(relay.url + "/")
        await a.evaluate("(waitMs) => window.call(false, waitMs)", WAIT_MS)
        return float(await b.evaluate("(waitMs) => window.call(true, waitMs)", WAIT_MS))
    finally:
        await context.close()


# -- report -------------------------------------------------------------------------------


def report(times: dict[str, list[float]], chromium: str) -> str:
    """The Markdown section for RESULTS.md."""
    tv, bare = times["tavkit"], times["bare"]
    med_t, med_b = statistics.median(tv), statistics.median(bare)
    return "\n".join(
        [
            "## Browser: time to first frame through `<tavkit-call>`",
            "",
            f"Measured {time.strftime('%Y-%m-%d %H:%M')} by `bench/ttff_browser.py` on "
            f"{platform.machine()}, {os.cpu_count()} CPUs, Chromium {chromium} (headless, "
            f"fake 640x480 camera at 30 fps), load average {os.getloadavg()[0]:.1f} at the "
            "end. Loopback only.",
            "",
            f"{len(tv)} runs each, alternating. Clock: from the second tab's first line "
            "(`start()` for tavkit) to the first frame of the other tab's video presented "
            "in it (`requestVideoFrameCallback`). The bare page does only camera, a "
            "WebSocket relay, one `RTCPeerConnection`, offer/answer and trickled candidates.",
            "",
            "| path | median | p95 |",
            "| --- | ---: | ---: |",
            f"| tavkit (REST enter + socket + server relay) | {med_t:.0f} ms | {p95(tv):.0f} ms |",
            f"| bare page + minimal relay | {med_b:.0f} ms | {p95(bare):.0f} ms |",
            f"| ratio tavkit / bare | {med_t / med_b:.2f} | {p95(tv) / p95(bare):.2f} |",
            "",
        ]
    )


async def run_all(url: str, key: str, runs: int) -> tuple[dict[str, list[float]], str]:
    """Alternate tavkit and bare runs in one browser; returns the times and its version."""
    times: dict[str, list[float]] = {"tavkit": [], "bare": []}
    async with async_playwright() as playwright, Relay() as relay:
        browser = await playwright.chromium.launch(executable_path=CHROMIUM, args=FLAGS)
        try:
            # One untimed call of each kind warms the browser's caches and codecs.
            await ttff_tavkit(browser, url, key, 1)
            await ttff_bare(browser, relay)
            for run in range(runs):
                t = await ttff_tavkit(browser, url, key, 100 + run)
                b = await ttff_bare(browser, relay)
                times["tavkit"].append(t)
                times["bare"].append(b)
                print(f"run {run + 1}/{runs}: tavkit {t:.0f} ms, bare {b:.0f} ms", flush=True)
            return times, browser.version
        finally:
            await browser.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n")[0])
    parser.add_argument("--runs", type=int, default=10, help="runs of each kind")
    parser.add_argument("--no-write", action="store_true", help="do not touch RESULTS.md")
    args = parser.parse_args()
    if args.runs < 1:
        parser.error("--runs must be at least 1")
    key = secrets.token_hex(32)
    with tavkit_server(APP_ID, key) as url:
        times, chromium = asyncio.run(run_all(url, key, args.runs))
    section = report(times, chromium)
    print()
    print(section)
    if not args.no_write:
        write_section("ttff_browser", section)


if __name__ == "__main__":
    main()
