"""Impaired-network browser benchmark: Chromium to Chromium time to first frame in the NAT lab.

Run from the repository root, as root (it builds the NAT lab of ``tests/netlab``)::

    .venv/bin/python bench/network_browser.py [--runs 6] [--no-write]

The Chromium half of tracker issue 15; ``bench/network.py`` is the Python half, and
this script takes its lab, servers, paths and impairments from there (``build``,
``Setup.impair``, ``CELLS``), so both halves measure the same networks. Each site
gets one headless Debian Chromium (``tests/netlab/browser.py``: the browser and every
process it starts live in the site's host namespace, behind its NAT), started once
and reused for every call; each call opens a fresh context per tab.

Per call, both tabs start at once. Each tab's clock runs from its own start to the
first frame of the other's video presented in it (``requestVideoFrameCallback``),
and the call's figure is the later of the two, i.e. until *both* see video, as in
``bench/network.py``. Two implementations alternate in every cell, with the same
two browsers and the same impairment, so load and luck hit both alike:

* **tavkit**: the server's ``/tavkit/demo/embed.html`` with ``<tavkit-call>``; the
  clock starts at ``start()`` (REST enter, camera, socket, perfect negotiation
  relayed by ``tavkit serve``, ICE, DTLS, first keyframe, decode, paint).
* **bare page**: the floor, the page of ``bench/ttff_browser.py`` made to run across
  two browsers: this script serves it, with a WebSocket relay that pairs two
  sockets per room, from the public namespace (``--bare-relay``). The clock starts
  before ``getUserMedia`` and the socket open; once both sockets are in, the
  offerer adds its tracks and offers, the other answers, candidates trickle. Its
  ``RTCPeerConnection`` gets the same ICE servers and policy the tavkit server hands
  out on that path (TURN credentials minted with coturn's secret).

Paths (``bench/network.PATHS``): **direct**, from the cone site to a Chromium in
the public namespace, with STUN only. The public namespace has no NAT, so its host
candidates (its addresses toward the sites) are reachable and the cone host's
checks to them open its mapping: a direct pair with no relay. It is also
``bench/network.py``'s direct path, so the two halves compare. The lab's other
NATed pairs offer no direct path: the cone's port-dependent filtering drops checks
from a symmetric NAT's fresh ports, and two symmetric NATs cannot meet at all. (A
second cone site would hole-punch to the first, since masquerade keeps ports, but
it would be a path the Python half does not measure.)

**relay**, sym1 to sym2 through coturn, on the server whose app has
``iceTransportPolicy: relay``; its TURN URL is the impairment relay
(``tests/netlab/impair.py``) in front of coturn, so both browsers' legs pass through
it. Impairments: *clean*; *5 % loss*, nftables dropping 5 % of UDP each way on one
NAT box of the path (cone's, or sym1's); *150 ms RTT*, relay path only, 37.5 ms ±
7.5 ms each way on each leg to coturn. Signalling (HTTP and WebSocket over TCP) is
neither lost nor delayed, for either implementation.

One untimed round per path warms the browsers first. The results are printed and
written to ``bench/RESULTS.md`` between the ``<!-- network_browser -->`` markers.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import http
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tests"))

from _common import RESULTS, phase_table, write_section  # noqa: E402
from netlab.browser import LabBrowsers, open_tab  # noqa: E402
from netlab.conftest import APP_ID, clean_env  # noqa: E402
from netlab.lab import PUBLIC_IP  # noqa: E402
from network import CELLS, LOSS, PATHS, WAIT, Setup, build, p90  # noqa: E402
from playwright.sync_api import Browser, Page  # noqa: E402
from playwright.sync_api import Error as PlaywrightError  # noqa: E402

BARE_PORT = 8090
IMPLS = ("tavkit", "bare page")
USERS = ("a", "b")
"""User ``a`` is in the path's first site; on the bare page it is also the offerer."""
STEPS = {
    "enter": "`start()` resolved (tavkit only: REST enter and socket)",
    "pc": "the `RTCPeerConnection` to the peer exists",
    "ice": "ICE connected",
    "connected": "connected (DTLS done)",
    "frame": "first frame presented",
}
"""The steps each page's clock marks (ms from its start), as the breakdown names them."""

# -- the pages ------------------------------------------------------------------------------

# Shared by both pages: resolve once the first frame of `video` (any element `find`
# returns, as the component may create or replace it late) is presented. Every
# promise settles into {ms} or {error}, stored on window.__ttff for a later evaluate.
_FIRST_FRAME = """
const firstFrame = (t0, find, root, waitMs, what) => {
  const hooked = new WeakSet();
  let watch = null;
  return new Promise((resolve, reject) => {
    const hook = () => {
      const video = find();
      if (!video || hooked.has(video)) return;
      hooked.add(video);
      video.requestVideoFrameCallback(() => resolve(performance.now() - t0));
    };
    watch = new MutationObserver(hook);
    watch.observe(root, { childList: true, subtree: true });
    hook();
    setTimeout(() => reject(new Error(`no frame from ${what} within ${waitMs} ms`)), waitMs);
  }).finally(() => watch.disconnect());
};
// When each step was first seen (ms from t0), polled every 10 ms until `done` settles:
// the connection made, ICE connected, DTLS and so the connection connected.
const phases = (t0, getPc, done) => {
  const seen = {};
  const mark = (name) => { if (!(name in seen)) seen[name] = Math.round(performance.now() - t0); };
  const timer = setInterval(() => {
    const pc = getPc();
    if (!pc) return;
    mark("pc");
    if (["connected", "completed"].includes(pc.iceConnectionState)) mark("ice");
    if (pc.connectionState === "connected") mark("connected");
  }, 10);
  done.finally(() => clearInterval(timer));
  return seen;
};
"""

TAVKIT_START = (
    """
([options, peer, waitMs]) => {
  const call = document.getElementById("call");
  const root = call.shadowRoot;
  const selector = `video[data-user-id="${CSS.escape(peer)}"]`;
  """
    + _FIRST_FRAME
    + """
  options.listener = { onErrorListener: (e) => window.__tv.errors.push(e) };
  const t0 = performance.now();
  const first = firstFrame(t0, () => root.querySelector(selector), root, waitMs, peer);
  const entered = call.start(options).then((ok) => {
    if (ok !== true) throw new Error(`start() gave ${JSON.stringify(ok)}`);
    return Math.round(performance.now() - t0);
  });
  const seen = phases(t0, () => call.peerConnections().get(peer), first);
  window.__ttff = Promise.all([first, entered]).then(
    ([ms, enter]) => ({ ms, phases: { enter, ...seen } }),
    (e) => ({ error: String(e), phases: seen }));
  return true;
}
"""
)

BARE_PAGE = (
    """<!doctype html>
<meta charset="utf-8"><title>bare</title>
<video id="remote" autoplay playsinline muted style="width:320px;height:240px"></video>
<script>
// The least a page must do for the same call: camera, socket, one RTCPeerConnection,
// offer/answer and trickled candidates relayed by the server, which says "peer"
// once both sockets of the room are in. Messages are handled one at a time.
"""
    + _FIRST_FRAME
    + """
window.call = (offerer, room, rtcConfig, waitMs) => {
  const t0 = performance.now();
  const video = document.getElementById("remote");
  const first = firstFrame(t0, () => video, document.body, waitMs, "the peer");
  const ws = new WebSocket(`ws://${location.host}/ws/${room}`);
  const media = navigator.mediaDevices.getUserMedia({ audio: true, video: true });
  const pc = (window.pc = new RTCPeerConnection(rtcConfig));
  const send = (data) => ws.send(JSON.stringify(data));
  const addTracks = async () => {
    const stream = await media;
    for (const track of stream.getTracks()) pc.addTrack(track, stream);
  };
  pc.onicecandidate = ({ candidate }) => candidate && send({ candidate: candidate.toJSON() });
  pc.ontrack = ({ streams }) => { video.srcObject = streams[0]; };
  let chain = Promise.resolve();
  ws.onmessage = ({ data }) => {
    const message = JSON.parse(data);
    chain = chain.then(async () => {
      if (message.peer && offerer) {
        await addTracks();
        await pc.setLocalDescription();
        send({ description: pc.localDescription.toJSON() });
      } else if (message.description && message.description.type === "offer") {
        await addTracks();
        await pc.setRemoteDescription(message.description);
        await pc.setLocalDescription();
        send({ description: pc.localDescription.toJSON() });
      } else if (message.description) {
        await pc.setRemoteDescription(message.description);
      } else if (message.candidate) {
        await pc.addIceCandidate(message.candidate);
      }
    });
  };
  const seen = phases(t0, () => pc, first);
  window.__ttff = first.then((ms) => ({ ms, phases: seen }),
                             (e) => ({ error: String(e), phases: seen }));
  return true;
};
</script>
"""
)

# The selected pair's candidate types, "local-remote", from either page's connection.
PAIR = """
async ([impl, peer]) => {
  const pc = impl === "tavkit"
    ? document.getElementById("call").peerConnections().get(peer)
    : window.pc;
  if (!pc) return "no connection";
  const stats = [...(await pc.getStats()).values()];
  const byId = new Map(stats.map((s) => [s.id, s]));
  const transport = stats.find((s) => s.type === "transport" && s.selectedCandidatePairId);
  const pair = transport && byId.get(transport.selectedCandidatePairId);
  if (!pair) return "no pair";
  const local = byId.get(pair.localCandidateId), remote = byId.get(pair.remoteCandidateId);
  return `${local.candidateType}-${remote.candidateType}`;
}
"""

# Where a call that showed no video got stuck: each connection's states, frames decoded
# and the video element's, for the log.
DIAGNOSE = """
async ([impl, peer]) => {
  const call = document.getElementById("call");
  const pc = impl === "tavkit" ? call.peerConnections().get(peer) : window.pc;
  const video = impl === "tavkit"
    ? call.shadowRoot.querySelector(`video[data-user-id="${CSS.escape(peer)}"]`)
    : document.getElementById("remote");
  const out = { state: impl === "tavkit" ? call.state : "-" };
  if (video) out.video = { src: !!video.srcObject, ready: video.readyState, w: video.videoWidth };
  if (!pc) return { ...out, pc: null };
  out.pc = `${pc.connectionState}/${pc.iceConnectionState}/${pc.signalingState}`;
  for (const r of (await pc.getStats()).values()) {
    if (r.type === "inbound-rtp" && r.kind === "video") {
      out.decoded = r.framesDecoded; out.received = r.packetsReceived;
      out.keyframes = r.keyFramesDecoded; out.plis = r.pliCount; out.nacks = r.nackCount;
    }
    if (r.type === "outbound-rtp" && r.kind === "video") {
      out.sentFrames = r.framesEncoded; out.sentPackets = r.packetsSent;
    }
    if (r.type === "transport") out.dtls = r.dtlsState;
  }
  return out;
}
"""

# -- the bare page's server (run as ``network_browser.py --bare-relay HOST:PORT``) ---------------


async def bare_relay(listen: str) -> None:
    """Serve BARE_PAGE and pair the two sockets of each ``/ws/<room>`` until stdin closes."""
    from websockets.asyncio.server import ServerConnection, serve
    from websockets.datastructures import Headers
    from websockets.exceptions import ConnectionClosed
    from websockets.http11 import Request, Response

    rooms: dict[str, set[ServerConnection]] = {}

    def page(connection: ServerConnection, request: Request) -> Response | None:
        if request.path.startswith("/ws/"):
            return None  # carry on with the WebSocket handshake
        body = BARE_PAGE.encode()
        headers = Headers({"Content-Type": "text/html; charset=utf-8"})
        headers["Content-Length"] = str(len(body))
        return Response(http.HTTPStatus.OK, "OK", headers, body)

    async def relay(connection: ServerConnection) -> None:
        path = connection.request.path if connection.request else ""
        room = rooms.setdefault(path, set())
        room.add(connection)
        try:
            if len(room) == 2:
                for member in list(room):
                    with contextlib.suppress(ConnectionClosed):
                        await member.send(json.dumps({"peer": True}))
            async for message in connection:
                for other in list(room):
                    if other is not connection:
                        with contextlib.suppress(ConnectionClosed):
                            await other.send(message)
        finally:
            room.discard(connection)
            if not room:
                rooms.pop(path, None)

    host, port = listen.rsplit(":", 1)
    async with serve(relay, host, int(port), process_request=page):
        print("ready", flush=True)
        loop = asyncio.get_running_loop()
        reader = asyncio.StreamReader()
        await loop.connect_read_pipe(lambda: asyncio.StreamReaderProtocol(reader), sys.stdin)
        await reader.read()


def start_bare_relay(setup: Setup) -> str:
    """Run :func:`bare_relay` in the public namespace; its base URL."""
    listen = f"{PUBLIC_IP}:{BARE_PORT}"
    argv = [sys.executable, __file__, "--bare-relay", listen]
    with (setup.workdir / "bare-relay.log").open("w") as err:
        process = setup.lab.spawn(
            setup.lab.public_ns, argv, env=clean_env(), stdin=subprocess.PIPE, stderr=err
        )
    assert process.stdout is not None
    if process.stdout.readline().strip() != "ready":
        raise RuntimeError(f"the bare page's relay did not start (see {err.name})")
    return f"http://{listen}"


def rtc_config(setup: Setup, path: str) -> dict[str, Any]:
    """The bare page's RTCConfiguration: what a bare aiortc peer of network.py gets."""
    ice = setup.ice[path]
    servers = [{k: v for k, v in server.items()} for server in ice["ice_servers"]]
    return {"iceServers": servers, "iceTransportPolicy": ice.get("transport_policy", "all")}


# -- one call -------------------------------------------------------------------------------


@contextlib.contextmanager
def bare_tab(browser: Browser, url: str) -> Iterator[Page]:
    """The bare page in a fresh context of ``browser``, closed afterwards."""
    context = browser.new_context(viewport={"width": 640, "height": 480})
    try:
        page = context.new_page()
        page.goto(url + "/")
        yield page
    finally:
        context.close()


def console(message: Any, log: list[str]) -> None:
    """Keep a page's console error, with where it came from."""
    if message.type == "error" and "favicon.ico" not in str(message.location):
        location = message.location or {}
        log.append(f"{message.text} ({location.get('url', '?')})")


@dataclass
class Outcome:
    """One call: when both tabs showed video, over what pair, and how it got there."""

    seconds: float | None
    """Until both tabs showed video; None if one did not within :data:`WAIT`."""
    pair: str
    steps: dict[str, float] = field(default_factory=dict)
    """Each step's time (ms) on the side that reached it later; see :data:`STEPS`."""
    log: list[str] = field(default_factory=list)
    """Each side's steps on one line, then any errors the pages showed."""


def call(
    browsers: LabBrowsers, impl: str, setup: Setup, bare_url: str, path: str, room: int
) -> Outcome:
    """One call between the path's two browsers, both tabs started at once."""
    server = setup.servers[path]
    errors: list[str] = []
    with contextlib.ExitStack() as stack:
        pages = []
        for user, site in zip(USERS, PATHS[path], strict=True):
            if impl == "tavkit":
                tab = stack.enter_context(open_tab(browsers(site), server.url, user))
                pages.append(tab.page)
            else:
                pages.append(stack.enter_context(bare_tab(browsers(site), bare_url)))
        for page in pages:  # console errors, for the log (loss may show some)
            page.on("console", lambda m, log=errors: console(m, log))
        for user, peer, page in zip(USERS, reversed(USERS), pages, strict=True):
            if impl == "tavkit":
                sig = server.sig(user)
                options = {"sdkAppId": APP_ID, "userId": user, "userSig": sig, "roomId": room}
                page.evaluate(TAVKIT_START, [options, peer, WAIT * 1000])
            else:
                args = [user == "a", room, rtc_config(setup, path), WAIT * 1000]
                page.evaluate("(args) => window.call(...args)", args)
        outcomes = [page.evaluate("() => window.__ttff") for page in pages]
        pair = pages[0].evaluate(PAIR, [impl, "b"])
        if any("ms" not in o for o in outcomes):
            for user, peer, page in zip(USERS, reversed(USERS), pages, strict=True):
                state = page.evaluate(DIAGNOSE, [impl, peer])
                errors.append(f"{user} stuck: {json.dumps(state)}")
        if impl == "tavkit":
            errors += [json.dumps(e) for page in pages for e in page.evaluate("window.__tv.errors")]
    errors += [o["error"] for o in outcomes if "error" in o]
    sides = [{**o["phases"], "frame": round(o["ms"]) if "ms" in o else None} for o in outcomes]
    line = " | ".join(
        f"{user}: " + " ".join(f"{k} {v}" for k, v in side.items())
        for user, side in zip(USERS, sides, strict=True)
    )
    if any("ms" not in o for o in outcomes):
        return Outcome(None, f"no video ({pair})", log=[line, *errors])
    steps = {k: max(side[k] for side in sides) for k in STEPS if all(k in x for x in sides)}
    return Outcome(max(o["ms"] for o in outcomes) / 1000, pair, steps, [line, *errors])


def measure(setup: Setup, browsers: LabBrowsers, bare_url: str, runs: int) -> dict[str, Any]:
    """Every cell, the two implementations alternating; a warm-up round per path first."""
    results: dict[str, Any] = {"ttff": {}, "pairs": {}, "failed": {}, "errors": {}, "steps": {}}
    room = 9500
    warmed: set[str] = set()
    for path, impairment in CELLS:
        setup.impair(path, impairment)
        print(f"{path}, {impairment}", flush=True)
        for run in range(1 if path in warmed else 0, runs + 1):
            for impl in IMPLS:
                room += 1
                try:
                    outcome = call(browsers, impl, setup, bare_url, path, room)
                except PlaywrightError as exc:  # a tab or browser gave up: a failed call
                    outcome = Outcome(None, "no video", log=["", str(exc).splitlines()[0]])
                seconds = outcome.seconds
                shown = f"{seconds * 1000:6.0f} ms" if seconds is not None else "  failed"
                print(f"  run {run} {impl:9} {shown}  {outcome.pair:11} {outcome.log[0]}")
                for error in outcome.log[1:]:
                    print(f"    {error[:400]}")
                sys.stdout.flush()
                if not run:
                    continue
                key = (path, impairment, impl)
                results["ttff"].setdefault(key, []).append(WAIT if seconds is None else seconds)
                results["pairs"].setdefault(key, set()).add(outcome.pair)
                results["errors"].setdefault(key, []).extend(outcome.log[1:])
                for step, ms in outcome.steps.items():
                    results["steps"].setdefault((*key, step), []).append(ms)
                if seconds is None:
                    results["failed"][key] = results["failed"].get(key, 0) + 1
        warmed.add(path)
    return results


# -- reporting ----------------------------------------------------------------------------------


def observations(results: dict[str, Any]) -> str:
    """What the numbers say, computed from them so that a re-run cannot contradict the text."""
    median = statistics.median
    ttff, steps = results["ttff"], results["steps"]
    name = " / ".join
    ratios = {cell: median(ttff[(*cell, "tavkit")]) / median(ttff[(*cell, "bare page")])
              for cell in CELLS}  # fmt: skip
    low, high = min(CELLS, key=lambda c: ratios[c]), max(CELLS, key=lambda c: ratios[c])
    text = [
        f"Observed: tavkit's median is {ratios[low]:.2f}x the bare page's at best "
        f"({name(low)}) and {ratios[high]:.2f}x at worst ({name(high)})."
    ]

    def step(impl: str, what: str) -> float:  # the median over every cell's medians
        return median(median(steps[(*cell, impl, what)]) for cell in CELLS
                      if steps.get((*cell, impl, what)))  # fmt: skip

    text.append(
        f"tavkit's connection to the peer exists about {step('tavkit', 'pc'):.0f} ms after "
        f"`start()` (REST enter, then the socket's welcome), the bare page's after "
        f"{step('bare page', 'pc'):.0f} ms; the bare page then waits for the other socket "
        "and camera before it offers, so much of that head start goes into waiting."
    )
    rtt = [c for c in CELLS if "RTT" in c[1]]
    if rtt and all(steps.get((*rtt[0], i, k)) for i in IMPLS for k in ("ice", "connected")):
        dtls = {i: median(steps[(*rtt[0], i, "connected")]) - median(steps[(*rtt[0], i, "ice")])
                for i in IMPLS}  # fmt: skip
        text.append(
            f"At {rtt[0][1]}, ICE connected to DTLS done takes {dtls['tavkit']:.0f} ms for "
            f"tavkit and {dtls['bare page']:.0f} ms for the bare page (medians of the "
            "later side)."
        )
    slow = [
        f"{name(key[:3])} {seconds * 1000:.0f} ms"
        for key, times in ttff.items()
        for seconds in times
        if seconds > 3 * median(times)
    ]
    if slow:
        text.append(
            "Calls slower than three times their cell's median (which the p90 of six "
            f"runs can hide): {', '.join(slow)}."
        )
    errors = sum(len(e) for k, e in results["errors"].items() if k[2] == "tavkit")
    if errors:
        text.append(
            f"The tavkit pages logged {errors} console or listener error(s) over the timed "
            "calls (the script prints them)."
        )
    return " ".join(text)


def report(results: dict[str, Any], runs: int, chromium: str, load: float) -> str:
    """The Markdown section for RESULTS.md."""
    ms = lambda s: f"{s * 1000:.0f} ms"  # noqa: E731
    lines = [
        "## Impaired networks in Chromium: time to first frame (NAT lab)",
        "",
        f"Measured {time.strftime('%Y-%m-%d %H:%M')} by `bench/network_browser.py` on "
        f"{platform.machine()}, {os.cpu_count()} CPUs, Chromium {chromium} (headless, fake "
        f"640x480 camera at 30 fps), load average {load:.1f} at the start and "
        f"{os.getloadavg()[0]:.1f} at the end. One Chromium per lab host, each in its "
        "host's namespace behind its NAT box (`tests/netlab`), reused for every call.",
        "",
        f"**Time to first frame** ({runs} calls per cell, the two implementations "
        "alternating on the same two browsers): both tabs start at once, each timed from "
        "its own start to the first frame of the other's video presented in it "
        "(`requestVideoFrameCallback`); the figure is the later of the two, until *both* "
        "see video. *tavkit* is `<tavkit-call>` on the server's embed page (REST enter, "
        "camera, socket, negotiation relayed by `tavkit serve`). *bare page* is camera, a "
        "WebSocket relay that pairs two sockets, one `RTCPeerConnection` with the same ICE "
        "servers and policy, offer/answer and trickled candidates. Paths and impairments "
        "are those of `bench/network.py`: direct, the cone site to a browser in the public "
        "namespace (STUN only; cone to symmetric and symmetric to symmetric cannot pair "
        "directly in the lab); relay, sym1 to sym2 with a relay-only app, through coturn "
        "behind the impairment relay. *5 % loss*: nftables drops "
        f"{LOSS:.0f} % of UDP each way on one NAT box of the path. *150 ms RTT*: 37.5 ms ± "
        "7.5 ms each way on each browser's leg to coturn. Signalling (TCP) is not impaired.",
        "",
        "| path | network | tavkit p50 | p90 | bare page p50 | p90 "
        "| p50 ratio tavkit / bare | p90 ratio | pairs |",
        "| --- | --- | ---: | ---: | ---: | ---: | ---: | ---: | --- |",
    ]
    notes = []
    for path, impairment in CELLS:
        tv, bare = (results["ttff"][(path, impairment, impl)] for impl in IMPLS)
        pairs = sorted(set().union(*(results["pairs"][(path, impairment, i)] for i in IMPLS)))
        lines.append(
            f"| {path} | {impairment} | {ms(statistics.median(tv))} | {ms(p90(tv))} | "
            f"{ms(statistics.median(bare))} | {ms(p90(bare))} | "
            f"{statistics.median(tv) / statistics.median(bare):.2f} | "
            f"{p90(tv) / p90(bare):.2f} | {', '.join(pairs)} |"
        )
        for impl in IMPLS:
            failed = results["failed"].get((path, impairment, impl))
            if failed:
                notes.append(
                    f"{path}/{impairment}/{impl}: {failed} call(s) showed no video "
                    f"within {WAIT:.0f} s, counted as {WAIT:.0f} s."
                )
    lines += ["", *notes] if notes else []
    lines += [
        "",
        "**Where the time goes**: the median, over the cell's calls that showed video, of "
        "each step's time from the start on the side that reached it later: "
        + "; ".join(f"*{step}*, {what}" for step, what in STEPS.items())
        + ".",
        "",
        *phase_table(
            ["path", "network", "page"],
            [
                (cell, {step: results["steps"].get((*cell, step), []) for step in STEPS})
                for path, impairment in CELLS
                for cell in ((path, impairment, impl) for impl in IMPLS)
            ],
            list(STEPS),
        ),
    ]
    lines += ["", observations(results)]
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n")[0])
    parser.add_argument("--runs", type=int, default=6, help="calls per cell and implementation")
    parser.add_argument("--no-write", action="store_true", help="do not touch RESULTS.md")
    parser.add_argument("--bare-relay", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.bare_relay:
        asyncio.run(bare_relay(args.bare_relay))
        return
    if args.runs < 1:
        parser.error("--runs must be at least 1")
    load = os.getloadavg()[0]
    with tempfile.TemporaryDirectory(prefix="tavkit-bench-netbrowser-") as tmp:
        setup = build(Path(tmp))
        try:
            bare_url = start_bare_relay(setup)
            origins = [*(server.url for server in setup.servers.values()), bare_url]
            (Path(tmp) / "chromium").mkdir()
            with LabBrowsers(setup.lab, Path(tmp) / "chromium", origins) as browsers:
                results = measure(setup, browsers, bare_url, args.runs)
                chromium = browsers(PATHS["direct"][0]).version
        finally:
            setup.lab.close()
    section = report(results, args.runs, chromium, load)
    print()
    print(section)
    if not args.no_write:
        write_section("network_browser", section)
        print(f"written to {RESULTS}")


if __name__ == "__main__":
    main()
