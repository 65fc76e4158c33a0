"""Browser benchmark: time to first frame through <tavkit-call> against a bare page.

Run from the repository root::

    .venv/bin/python bench/ttff_browser.py [--runs 10] [--phases] [--no-write]

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

With ``--phases``, also where the time goes: the median of each join phase of tab B
(``<tavkit-call>.joinTimeline()``, ms from ``start()``; the bare page marks the same
phases it has on the same clock: no REST enter and no welcome).

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

from _common import p95, phase_table, tavkit_server, write_section
from playwright.async_api import Browser, async_playwright
from websockets.asyncio.server import Server, ServerConnection, serve
from websockets.datastructures import Headers
from websockets.http11 import Request, Response

from tavkit.auth import gen_user_sig
from tavkit.protocol import JOIN_PHASES

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

Phases = dict[str, float]
"""A run's join phases: phase → ms from the start."""

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
  const ms = await first;
  // The component notes its own first-frame on the same presented frame; give it that frame.
  const timeline = () => call.joinTimeline().get(peer) || { phases: [] };
  for (let i = 0; i < 200 && !timeline().phases.some(([p]) => p === "first-frame"); i += 1)
    await new Promise((resolve) => setTimeout(resolve, 10));
  return { ms, phases: Object.fromEntries(timeline().phases) };
}
"""

TAVKIT_WAIT = """
async (options) => {
  const call = document.getElementById("call");
  return await call.start(options);
}
"""


async def ttff_tavkit(browser: Browser, url: str, key: str, room: int) -> tuple[float, Phases]:
    """Milliseconds from tab B's start() to B's first presented frame of A; B's phases."""
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
        out = await b.evaluate(TAVKIT_TTFF, [options("b"), "a", WAIT_MS])
        return float(out["ms"]), out["phases"]
    finally:
        await context.close()


# -- bare ---------------------------------------------------------------------------------

BARE_PAGE = """<!doctype html>
<meta charset="utf-8"><title>bare</title>
<video id="remote" autoplay playsinline muted style="width:320px;height:240px"></video>
<script>
// The least a page must do for the same call: camera, socket, one RTCPeerConnection,
// offer/answer and trickled candidates relayed by the server. `seen` marks the join
// phases it has (tavkit/web/timeline.js's names) on the same clock.
window.call = async (offerer, waitMs) => {
  const t0 = performance.now();
  const seen = {};
  const mark = (phase) => { if (!(phase in seen)) seen[phase] = performance.now() - t0; };
  const video = document.getElementById("remote");
  const first = new Promise((resolve, reject) => {
    video.requestVideoFrameCallback(() => {
      mark("first-frame");
      resolve(performance.now() - t0);
    });
    setTimeout(() => reject(new Error("no frame")), waitMs);
  });
  const ws = new WebSocket(`ws://${location.host}/ws`);
  const [stream] = await Promise.all([
    navigator.mediaDevices.getUserMedia({ audio: true, video: true }).then((s) => {
      mark("media");
      return s;
    }),
    new Promise((resolve) => (ws.onopen = () => { mark("socket-open"); resolve(); })),
  ]);
  const pc = new RTCPeerConnection({ iceServers: [] });
  const send = (data) => ws.send(JSON.stringify(data));
  pc.onicecandidate = ({ candidate }) => candidate && send({ candidate: candidate.toJSON() });
  pc.ontrack = ({ track, streams }) => {
    if (!track.muted) mark("first-rtp");
    else track.addEventListener("unmute", () => mark("first-rtp"), { once: true });
    video.srcObject = streams[0];
  };
  pc.oniceconnectionstatechange = () => {
    if (["connected", "completed"].includes(pc.iceConnectionState)) mark("ice-connected");
  };
  pc.onconnectionstatechange = () => {
    if (pc.connectionState === "connected") mark("dtls-connected");
  };
  ws.onmessage = async ({ data }) => {
    const message = JSON.parse(data);
    if (message.description) {
      mark(message.description.type);
      if (message.description.type === "offer") {
        for (const track of stream.getTracks()) pc.addTrack(track, stream);
        await pc.setRemoteDescription(message.description);
        await pc.setLocalDescription();
        send({ description: pc.localDescription.toJSON() });
        mark("answer");
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
    mark("offer");
  }
  window.pc = pc;
  return offerer ? { ms: await first, phases: seen } : null;
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


async def ttff_bare(browser: Browser, relay: Relay) -> tuple[float, Phases]:
    """Milliseconds from the bare offerer's first line to its first presented frame; phases."""
    context = await browser.new_context(viewport={"width": 640, "height": 480})
    try:
        a, b = await context.new_page(), await context.new_page()
        for page in (a, b):
            await page.goto(relay.url + "/")
        await a.evaluate("(waitMs) => window.call(false, waitMs)", WAIT_MS)
        out = await b.evaluate("(waitMs) => window.call(true, waitMs)", WAIT_MS)
        return float(out["ms"]), out["phases"]
    finally:
        await context.close()


# -- report -------------------------------------------------------------------------------


def where_the_time_goes(phases: dict[str, dict[str, list[float]]]) -> list[str]:
    """The phase table of tab B: tavkit's phases, and the bare page's where it has them."""
    rows = [(["tavkit"], phases["tavkit"]), (["bare page"], phases["bare"])]
    return phase_table(["page"], rows, JOIN_PHASES)


def report(
    times: dict[str, list[float]],
    chromium: str,
    phases: dict[str, dict[str, list[float]]] | None = None,
) -> str:
    """The Markdown section for RESULTS.md."""
    tv, bare = times["tavkit"], times["bare"]
    med_t, med_b = statistics.median(tv), statistics.median(bare)
    where: list[str] = []
    if phases is not None:
        where = [
            "**Where the time goes**: the median, over the same runs, of each phase of tab "
            "B's join (ms from its start: `<tavkit-call>.joinTimeline()`; the bare page "
            "marks the phases it has: no REST enter and no welcome). *offer*: B's offer "
            "sent; *answer*: A's answer in; *first-rtp*: the first remote track unmuted; "
            "*first-frame*: the first frame presented.",
            "",
            *where_the_time_goes(phases),
            "",
        ]
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
            *where,
        ]
    )


async def run_all(
    url: str, key: str, runs: int, show_phases: bool = False
) -> tuple[dict[str, list[float]], dict[str, dict[str, list[float]]], str]:
    """Alternate tavkit and bare runs in one browser: the times, the phases, its version."""
    times: dict[str, list[float]] = {"tavkit": [], "bare": []}
    phases: dict[str, dict[str, list[float]]] = {"tavkit": {}, "bare": {}}
    async with async_playwright() as playwright, Relay() as relay:
        browser = await playwright.chromium.launch(executable_path=CHROMIUM, args=FLAGS)
        try:
            # One untimed call of each kind warms the browser's caches and codecs.
            await ttff_tavkit(browser, url, key, 1)
            await ttff_bare(browser, relay)
            for run in range(runs):
                t, t_phases = await ttff_tavkit(browser, url, key, 100 + run)
                b, b_phases = await ttff_bare(browser, relay)
                times["tavkit"].append(t)
                times["bare"].append(b)
                print(f"run {run + 1}/{runs}: tavkit {t:.0f} ms, bare {b:.0f} ms", flush=True)
                for kind, seen in (("tavkit", t_phases), ("bare", b_phases)):
                    for phase, ms in seen.items():
                        phases[kind].setdefault(phase, []).append(ms)
                    if show_phases:
                        ordered = sorted(seen.items(), key=lambda item: item[1])
                        print(f"  {kind:6} " + " ".join(f"{p} {ms:.0f}" for p, ms in ordered))
            return times, phases, browser.version
        finally:
            await browser.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n")[0])
    parser.add_argument("--runs", type=int, default=10, help="runs of each kind")
    parser.add_argument(
        "--phases", action="store_true", help="print and write where the time of a join goes"
    )
    parser.add_argument("--no-write", action="store_true", help="do not touch RESULTS.md")
    args = parser.parse_args()
    if args.runs < 1:
        parser.error("--runs must be at least 1")
    key = secrets.token_hex(32)
    with tavkit_server(APP_ID, key) as url:
        times, phases, chromium = asyncio.run(run_all(url, key, args.runs, args.phases))
    if args.phases:
        print("\nwhere the time goes (median ms from start())")
        print("\n".join(where_the_time_goes(phases)))
    section = report(times, chromium, phases if args.phases else None)
    print()
    print(section)
    if not args.no_write:
        write_section("ttff_browser", section)


if __name__ == "__main__":
    main()
