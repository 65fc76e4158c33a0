"""Impaired-network benchmark: time to first frame under loss and delay, and outage recovery.

Run from the repository root, as root (it builds the NAT lab of ``tests/netlab``)::

    .venv/bin/python bench/network.py [--runs 8] [--outages 8] [--no-write]

Every call is between two processes in two lab hosts, each behind its own NAT box,
and it measures in one run:

1. **Time to first frame (TTFF).** Both participants start at once. The figure per
   call is the later of the two times from a participant's start to its first
   decoded video frame from the other, i.e. until both see video. Three
   implementations take turns in every cell, so load hits all of them alike:
   tavkit's Python client (``tests/netlab/_client.py``: REST enter, socket,
   signaling through ``tavkit serve``), the same client with
   :func:`tavkit.client.dtls.retransmit_early`, and a bare-aiortc floor, which is
   two ``RTCPeerConnection`` with the same ICE servers and policy, the same test
   pattern, and offer and answer relayed over this script's pipes.

   Paths: **direct**, from the cone site to a host in the public namespace (STUN
   only). **relay**, from sym1 to sym2 through coturn, for an app whose
   ``iceTransportPolicy`` is ``relay``, so the pair is relay to relay. Its TURN URL
   is an impairment relay (``tests/netlab/impair.py``) in front of coturn, so both
   clients' legs to coturn pass through it. Impairments:
   *clean*. *5 % loss*: nftables drops 5 % of UDP in each direction on one NAT box
   of the path (cone's, or sym1's). *150 ms RTT*: the impairment relay delays each
   leg 37.5 ms ± 7.5 ms each way, so 150 ms ± 30 ms between the clients. The direct
   path gets no delay cell: without netem, delay needs a user-space hop, and a
   direct path has none.
2. **The DTLS handshake alone**, on loopback in this process: two aiortc peer
   connections (no media), each of whose ICE transports drops 5 % of the datagrams
   DTLS hands it (handshake records, and any copies of them), with and without
   :func:`~tavkit.client.dtls.retransmit_early` on both, alternating. The clock runs
   from the first DTLS transport entering ``connecting`` to the last one
   ``connected``, so ICE is not part of it.
3. **Outage recovery.** In one established call per path, the first client's NAT box
   drops all forwarded traffic (``drop`` in its forward hook) for
   :data:`OUTAGE` seconds. The time is measured from the drop being lifted until
   the other side decodes that client's video again. This is repeated
   ``--outages`` times, and the bare-aiortc pair goes through the same outages.

The results are printed and written to ``bench/RESULTS.md`` between the
``<!-- network -->`` markers.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import platform
import queue
import random
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tests"))

from _common import RESULTS, p95, write_section  # noqa: E402
from netlab.conftest import (  # noqa: E402
    APP_ID,
    APP_KEY,
    DIRECT_ENV,
    HERE,
    TURN_ENV,
    TURN_PORT,
    TURN_SECRET,
    LabServer,
    clean_env,
    start_coturn,
    start_tavkit,
    turn_config,
)
from netlab.impair import Link, add_drop, remove_drop, spawn_relay, udp_loss_rule  # noqa: E402
from netlab.lab import LAB_NETWORK, PUBLIC_IP, NatLab  # noqa: E402

IMPAIR_PORT = 3479
WAIT = 30.0
"""The most one call may take to show video (a failed run counts as this, and is noted)."""
OUTAGE = 10.0
RECOVER_WAIT = 40.0
GAP = 1.0
"""A pause in video at least this long (seconds) is an outage seen by the receiver."""
LOSS = 5.0
RTT_LEG = Link(delay=0.0375, jitter=0.0075)
IMPLS = ("tavkit", "tavkit+early DTLS", "bare aiortc")
CELLS = (
    ("direct", "clean"),
    ("direct", "5 % loss"),
    ("relay", "clean"),
    ("relay", "5 % loss"),
    ("relay", "150 ms RTT"),
)
PATHS = {"direct": ("cone", "public"), "relay": ("sym1", "sym2")}


# -- participants --------------------------------------------------------------------------


class Participant:
    """One process in a lab host whose stdout lines are JSON, read on a thread."""

    def __init__(self, lab: NatLab, ns: str, argv: list[str], log: Path) -> None:
        with log.open("w") as err:
            self.process = lab.spawn(ns, argv, env=clean_env(), stdin=subprocess.PIPE, stderr=err)
        self.log = log
        self._lines: queue.Queue[dict[str, Any] | None] = queue.Queue()
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self) -> None:
        assert self.process.stdout is not None
        for line in self.process.stdout:
            with contextlib.suppress(ValueError):
                self._lines.put(json.loads(line))
        self._lines.put(None)

    def next(self, timeout: float) -> dict[str, Any]:
        """The next line, or an error if none comes within ``timeout`` or it exited."""
        try:
            line = self._lines.get(timeout=timeout)
        except queue.Empty:
            raise TimeoutError(f"no line within {timeout} s ({self.log})") from None
        if line is None:
            raise RuntimeError(f"exited: {self.log.read_text(errors='replace')[-2000:]}")
        return line

    def drain(self) -> None:
        """Forget the lines read so far."""
        with contextlib.suppress(queue.Empty):
            while True:
                self._lines.get_nowait()

    def write(self, line: dict[str, Any]) -> None:
        """Send one JSON line to its stdin."""
        assert self.process.stdin is not None
        self.process.stdin.write(json.dumps(line) + "\n")
        self.process.stdin.flush()


@contextlib.contextmanager
def pair(
    lab: NatLab, impl: str, server: LabServer, ice: dict[str, Any], path: str, room: int,
    workdir: Path, watch: bool = False,
) -> Iterator[tuple[Participant, Participant]]:  # fmt: skip
    """Start the two participants of ``impl`` on ``path``; hang both up on exit."""
    sites = PATHS[path]
    people = []
    for user, peer, site in (("a", "b", sites[0]), ("b", "a", sites[1])):
        log = workdir / f"{room}-{user}.log"
        if impl == "bare aiortc":
            options = {"offer": user == "a", "ice": ice, "watchGap": GAP if watch else 0}
            argv = [sys.executable, __file__, "--peer", json.dumps(options)]
        else:
            options = {
                "server": server.url, "sdkAppId": APP_ID, "userId": user,
                "userSig": server.sig(user), "roomId": room, "peer": peer, "within": WAIT,
                "frames": 5, "earlyDtls": impl.endswith("DTLS"),
            }  # fmt: skip
            if watch:
                options["watchGap"] = GAP
            argv = [sys.executable, str(HERE / "_client.py"), json.dumps(options)]
        people.append(Participant(lab, lab.host(site), argv, log))
    a, b = people
    try:
        if impl == "bare aiortc":  # the trivial signaling: offer and answer over the pipes
            b.write(a.next(WAIT))
            a.write(b.next(WAIT))
        yield a, b
    finally:
        for person in people:
            with contextlib.suppress(OSError):
                assert person.process.stdin is not None
                person.process.stdin.close()
        for person in people:
            with contextlib.suppress(subprocess.TimeoutExpired):
                person.process.wait(20)
            lab.stop(person.process)


def ttff(
    lab: NatLab, impl: str, server: LabServer, ice: dict[str, Any], path: str, room: int,
    workdir: Path,
) -> tuple[float, str]:  # fmt: skip
    """One call's time until both sides decoded video (seconds), and its pair."""
    with pair(lab, impl, server, ice, path, room, workdir) as (a, b):
        reports = [a.next(WAIT + 30), b.next(WAIT + 30)]
    times = [r.get("firstVideoMs") for r in reports]
    kinds = reports[0].get("pair") or {}
    label = f"{kinds.get('local')}-{kinds.get('remote')}"
    if any(t is None for t in times):
        return WAIT, "no video"
    return max(times) / 1000, label


def outages(
    lab: NatLab, impl: str, server: LabServer, ice: dict[str, Any], path: str, room: int,
    workdir: Path, count: int,
) -> list[float]:  # fmt: skip
    """Recovery times (seconds) of ``count`` outages of the first site in one call."""
    box = lab.sites[PATHS[path][0]].nat_ns
    recovered = []
    with pair(lab, impl, server, ice, path, room, workdir, watch=True) as (a, b):
        a.next(WAIT + 30), b.next(WAIT + 30)
        for _ in range(count):
            time.sleep(3.0)  # video flowing steadily again
            b.drain()
            add_drop(box)
            time.sleep(OUTAGE)
            remove_drop(box)
            restored = time.monotonic()
            try:
                while (event := b.next(RECOVER_WAIT)).get("event") != "resumed":
                    pass
                recovered.append(max(0.0, event["at"] - restored))
            except TimeoutError:
                recovered.append(RECOVER_WAIT)
    return recovered


# -- the bare-aiortc participant (run as ``network.py --peer``) ----------------------------------


async def bare_peer(options: dict[str, Any]) -> None:
    """One bare aiortc peer: offer or answer over stdin/stdout, then report its TTFF."""
    from aiortc import RTCPeerConnection, RTCSessionDescription

    from tavkit.client import TestPattern
    from tavkit.ice import configuration

    started = time.monotonic()
    loop = asyncio.get_running_loop()
    reader = asyncio.StreamReader()
    await loop.connect_read_pipe(lambda: asyncio.StreamReaderProtocol(reader), sys.stdin)
    media = TestPattern(width=160, height=120, fps=15)
    await media.open()
    pc = RTCPeerConnection(configuration(**options["ice"]))
    first: asyncio.Future[float] = loop.create_future()
    tasks: list[asyncio.Task[None]] = []

    @pc.on("track")
    def on_track(track: Any) -> None:
        async def consume() -> None:  # every frame, as a receiver must; watch the gaps
            last = None
            while True:
                await track.recv()
                now = time.monotonic()
                if not first.done():
                    first.set_result(now)
                gap = options["watchGap"]
                if gap and last is not None and now - last >= gap:
                    line = {"event": "resumed", "at": now, "gap": now - last}
                    print(json.dumps(line), flush=True)
                last = now

        if track.kind == "video":
            tasks.append(asyncio.create_task(consume()))

    async def answer_from_stdin() -> RTCSessionDescription:
        line = json.loads(await reader.readline())
        return RTCSessionDescription(line["sdp"], line["type"])

    if options["offer"]:
        for track in (media.audio, media.video):
            pc.addTrack(track)
        await pc.setLocalDescription(await pc.createOffer())
        print(json.dumps({"sdp": pc.localDescription.sdp, "type": "offer"}), flush=True)
        await pc.setRemoteDescription(await answer_from_stdin())
    else:
        offer = await answer_from_stdin()
        for track in (media.audio, media.video):
            pc.addTrack(track)
        await pc.setRemoteDescription(offer)
        await pc.setLocalDescription(await pc.createAnswer())
        print(json.dumps({"sdp": pc.localDescription.sdp, "type": "answer"}), flush=True)
    try:
        async with asyncio.timeout(WAIT):
            at = await first
        report: dict[str, Any] = {"firstVideoMs": round((at - started) * 1000)}
    except TimeoutError:
        report = {"firstVideoMs": None}
    report["pair"] = _selected_pair(pc)
    print(json.dumps(report), flush=True)
    with contextlib.suppress(TimeoutError):
        async with asyncio.timeout(600):
            await reader.read()
    for task in tasks:
        task.cancel()
    await pc.close()
    await media.close()


def _selected_pair(pc: Any) -> dict[str, str] | None:
    for transceiver in pc.getTransceivers():
        for nominated in transceiver.receiver.transport.transport._connection._nominated.values():
            return {"local": nominated.local_candidate.type,
                    "remote": nominated.remote_candidate.type}  # fmt: skip
    return None


# -- the DTLS handshake alone ---------------------------------------------------------------------


async def dtls_handshake(early: bool, loss: float, rng: random.Random) -> float:
    """Seconds from the first DTLS ``connecting`` to the last ``connected`` on loopback."""
    from aiortc import RTCPeerConnection

    from tavkit.client.dtls import retransmit_early
    from tavkit.ice import configuration, gather_on

    pcs = [RTCPeerConnection(configuration()) for _ in range(2)]
    marks: dict[str, list[float]] = {"connecting": [], "connected": []}
    both = asyncio.Event()
    for pc in pcs:
        pc.addTransceiver("audio")
        dtls = pc.getTransceivers()[0].sender.transport
        ice, inner = dtls.transport, dtls.transport._send

        async def lossy(data: bytes, inner: Any = inner) -> None:
            if rng.random() >= loss:
                await inner(data)

        def mark(dtls: Any = dtls) -> None:
            marks.setdefault(dtls.state, []).append(time.monotonic())
            if len(marks["connected"]) == 2:
                both.set()

        ice._send = lossy
        dtls.on("statechange", mark)
        if early:
            retransmit_early(pc)
    a, b = pcs
    try:
        gather_on(a, ["127.0.0.1"])
        await a.setLocalDescription(await a.createOffer())
        await b.setRemoteDescription(a.localDescription)
        gather_on(b, ["127.0.0.1"])
        await b.setLocalDescription(await b.createAnswer())
        await a.setRemoteDescription(b.localDescription)
        async with asyncio.timeout(WAIT):
            await both.wait()
        return max(marks["connected"]) - min(marks["connecting"])
    finally:
        for pc in pcs:
            await pc.close()


async def dtls_handshakes(runs: int) -> dict[bool, list[float]]:
    """``runs`` handshakes each way at :data:`LOSS` % loss, alternating."""
    rng = random.Random(15)
    results: dict[bool, list[float]] = {False: [], True: []}
    for _ in range(runs):
        for early in (False, True):
            results[early].append(await dtls_handshake(early, LOSS / 100, rng))
    return results


# -- the lab -------------------------------------------------------------------------------------


@dataclass
class Setup:
    """The lab, its servers and the ICE settings a bare peer gets for each path."""

    lab: NatLab
    servers: dict[str, LabServer]
    ice: dict[str, dict[str, Any]]
    workdir: Path
    relay: Any = None

    def impair(self, path: str, impairment: str) -> None:
        """Set the lab's links for one cell (and nothing else)."""
        for site in self.lab.sites.values():
            remove_drop(site.nat_ns)
        if self.relay is not None:
            self.relay.stop()
        link = RTT_LEG if impairment == "150 ms RTT" else Link()
        self.relay = spawn_relay(self.lab, self.lab.public_ns, (PUBLIC_IP, IMPAIR_PORT),
                                 (PUBLIC_IP, TURN_PORT), link=link)  # fmt: skip
        if impairment == "5 % loss":
            add_drop(self.lab.sites[PATHS[path][0]].nat_ns, udp_loss_rule(LOSS))


def build(workdir: Path) -> Setup:
    """The lab, coturn, the impairment relay and two tavkit servers."""
    from tavkit.server.ice import turn_credentials

    lab = NatLab()
    lab.build({"cone": "cone", "sym1": "symmetric", "sym2": "symmetric"})
    (workdir / "coturn").mkdir()
    start_coturn(lab, workdir / "coturn", turn_config(TURN_ENV, relay_ip=PUBLIC_IP))
    relay_url = f"turn:{PUBLIC_IP}:{IMPAIR_PORT}"
    relay_env = {**TURN_ENV, "TAVKIT_ICE_SERVERS": relay_url}
    apps = workdir / "apps.json"
    apps.write_text(json.dumps([{"sdkAppId": APP_ID, "key": APP_KEY,
                                 "iceTransportPolicy": "relay"}]))  # fmt: skip
    apps.chmod(0o600)
    servers = {}
    for port, (name, env, flags) in enumerate(
        (
            ("direct", {"TAVKIT_APPS": f"{APP_ID}:{APP_KEY}", **DIRECT_ENV}, []),
            ("relay", relay_env, ["--apps-file", str(apps)]),
        ),
        8080,
    ):
        (workdir / name).mkdir()
        servers[name] = start_tavkit(lab, workdir / name, name, env, port=port, flags=flags)
    user, credential = turn_credentials(TURN_SECRET, "bare", int(time.time()) + 86400)
    ice = {
        "direct": {"ice_servers": [{"urls": DIRECT_ENV["TAVKIT_ICE_SERVERS"]}]},
        "relay": {
            "ice_servers": [{"urls": relay_url, "username": user, "credential": credential}],
            "transport_policy": "relay",
        },
    }
    assert LAB_NETWORK in TURN_ENV["TAVKIT_ICE_ALLOWED_NETWORKS"]
    return Setup(lab, servers, ice, workdir)


# -- measuring and reporting ---------------------------------------------------------------------


def p90(values: list[float]) -> float:
    """The 90th percentile by nearest rank, as :func:`_common.p95`."""
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(0.9 * (len(ordered) - 1)))]


def measure(setup: Setup, runs: int, count: int, handshakes: int) -> dict[str, Any]:
    """Every TTFF cell (implementations alternating), the DTLS handshakes, the outages."""
    results: dict[str, Any] = {"ttff": {}, "pairs": {}, "failed": {}, "outage": {}}
    print(f"DTLS handshakes, {LOSS:.0f} % loss")
    results["dtls"] = asyncio.run(dtls_handshakes(handshakes))
    for early, times in results["dtls"].items():
        print(f"  early {early}: p50 {statistics.median(times) * 1000:.0f} ms, "
              f"p90 {p90(times) * 1000:.0f} ms")  # fmt: skip
    room = 9000
    for path, impairment in CELLS:
        setup.impair(path, impairment)
        print(f"{path}, {impairment}")
        first = path == CELLS[0][0] and impairment == CELLS[0][1]
        for run in range(0 if first else 1, runs + 1):  # one warm-up round in all, discarded
            for impl in IMPLS:
                room += 1
                ice = setup.ice[path]
                seconds, label = ttff(setup.lab, impl, setup.servers[path], ice, path, room,
                                      setup.workdir)  # fmt: skip
                print(f"  run {run} {impl:18} {seconds * 1000:6.0f} ms  {label}")
                if run:
                    key = (path, impairment, impl)
                    results["ttff"].setdefault(key, []).append(seconds)
                    results["pairs"].setdefault(key, set()).add(label)
                    if label == "no video":
                        results["failed"][key] = results["failed"].get(key, 0) + 1
    for path in PATHS:
        setup.impair(path, "clean")
        for impl in ("tavkit", "bare aiortc"):
            room += 1
            print(f"outages, {path}, {impl}")
            times = outages(setup.lab, impl, setup.servers[path], setup.ice[path], path, room,
                            setup.workdir, count)  # fmt: skip
            print("  " + ", ".join(f"{t:.2f} s" for t in times))
            results["outage"][(path, impl)] = times
    return results


def report(results: dict[str, Any], runs: int, count: int, handshakes: int, load: float) -> str:
    """The Markdown section for RESULTS.md."""
    ms = lambda s: f"{s * 1000:.0f} ms"  # noqa: E731
    lines = [
        "## Impaired networks: time to first frame and outage recovery (NAT lab)",
        "",
        f"Measured {time.strftime('%Y-%m-%d %H:%M')} by `bench/network.py` on "
        f"{platform.machine()}, {os.cpu_count()} CPUs, Python {platform.python_version()}, "
        f"load average {load:.1f} at the start and {os.getloadavg()[0]:.1f} at the end. "
        "Every participant is a process in its own lab host behind its own NAT box "
        "(`tests/netlab`), 160x120 at 15 fps test pattern plus a tone.",
        "",
        f"**Time to first frame** ({runs} calls per cell, the three implementations "
        "alternating): both participants start at once, and the figure is the time until "
        "*both* have decoded the other's first video frame. *tavkit* is the Python client "
        "(REST enter, socket, signaling through `tavkit serve`) with aiortc's own DTLS "
        "timer; *+early DTLS* is the client as it ships, which adds "
        "`tavkit.client.dtls.retransmit_early`. *bare aiortc* is two `RTCPeerConnection`s "
        "with the same ICE servers and policy, with offer and answer passed over the "
        "benchmark's pipes. Direct: the cone site to a public host (STUN only). Relay: "
        "sym1 to sym2 with a relay-only app, through coturn behind the impairment relay. "
        f"*5 % loss*: nftables drops {LOSS:.0f} % of UDP each way on one NAT box of the "
        "path. *150 ms RTT*: 37.5 ms ± 7.5 ms each way on each client's leg to coturn. "
        "The direct path has no delay cell, because without netem delay needs a "
        "user-space hop and a direct path has none.",
        "",
        "| path | network | tavkit p50 | p90 | +early DTLS p50 | p90 | bare aiortc p50 | p90 "
        "| p50 ratio tavkit / bare | pairs |",
        "| --- | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | --- |",
    ]
    notes = []
    for path, impairment in CELLS:
        cells = [results["ttff"][(path, impairment, impl)] for impl in IMPLS]
        pairs = sorted(set().union(*(results["pairs"][(path, impairment, i)] for i in IMPLS)))
        row = f"| {path} | {impairment} | "
        row += " | ".join(f"{ms(statistics.median(c))} | {ms(p90(c))}" for c in cells)
        row += f" | {statistics.median(cells[0]) / statistics.median(cells[2]):.2f} | "
        row += f"{', '.join(pairs)} |"
        lines.append(row)
        for impl in IMPLS:
            failed = results["failed"].get((path, impairment, impl))
            if failed:
                notes.append(f"{path}/{impairment}/{impl}: {failed} call(s) showed no video "
                             f"within {WAIT:.0f} s, counted as {WAIT:.0f} s.")  # fmt: skip
    lines += ["", *notes] if notes else []
    plain, early = results["dtls"][False], results["dtls"][True]
    lines += [
        "",
        f"**The DTLS handshake alone** ({handshakes} each, alternating, loopback, in one "
        f"process): two aiortc peer connections whose ICE transports drop {LOSS:.0f} % of "
        "the datagrams DTLS sends, each way. Timed from the first DTLS transport "
        "`connecting` to the last `connected`.",
        "",
        "| DTLS | p50 | p90 | p95 | max |",
        "| --- | ---: | ---: | ---: | ---: |",
        f"| aiortc as is (OpenSSL: 1 s, doubling) | {ms(statistics.median(plain))} | "
        f"{ms(p90(plain))} | {ms(p95(plain))} | {ms(max(plain))} |",
        f"| `retransmit_early` on both sides | {ms(statistics.median(early))} | "
        f"{ms(p90(early))} | {ms(p95(early))} | {ms(max(early))} |",
    ]
    lines += [
        "",
        f"**Outage recovery** ({count} outages per row, one call each): the first "
        f"participant's NAT box drops everything it forwards for {OUTAGE:.0f} s. The time is "
        "measured from the drop being lifted until the other participant decodes its video "
        f"again (a pause of {GAP:.0f} s or more that then ends). The baseline is the bare "
        "aiortc pair with the same outage. It has no repair of its own, so a connection "
        "aiortc ends stays down. aioice gives up on a pair only after six failed consent "
        "checks (about 30 s), so a 10 s outage alone should not end a connection.",
        "",
        "| path | tavkit p50 | p95 | each (s) | bare aiortc p50 | p95 | each (s) |",
        "| --- | ---: | ---: | --- | ---: | ---: | --- |",
    ]
    for path in PATHS:
        row = f"| {path} |"
        for impl in ("tavkit", "bare aiortc"):
            times = results["outage"][(path, impl)]
            each = ", ".join("never" if t >= RECOVER_WAIT else f"{t:.2f}" for t in times)
            row += f" {ms(statistics.median(times))} | {ms(p95(times))} | {each} |"
        lines.append(row)
    lines += [
        "",
        f"*never*: no video within {RECOVER_WAIT:.0f} s of the restore, counted as "
        f"{RECOVER_WAIT:.0f} s in the percentiles. Recovery is bimodal for both "
        "implementations: at once (tens of ms), or after several seconds. The few outages "
        "make the percentiles rough.",
    ]
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--runs", type=int, default=8, help="calls per TTFF cell and impl")
    parser.add_argument("--outages", type=int, default=8, help="outages per path and impl")
    parser.add_argument("--handshakes", type=int, default=100, help="DTLS handshakes each way")
    parser.add_argument("--no-write", action="store_true", help="do not touch RESULTS.md")
    parser.add_argument("--peer", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.peer:
        asyncio.run(bare_peer(json.loads(args.peer)))
        return
    load = os.getloadavg()[0]
    with tempfile.TemporaryDirectory(prefix="tavkit-bench-net-") as tmp:
        setup = build(Path(tmp))
        try:
            results = measure(setup, args.runs, args.outages, args.handshakes)
        finally:
            setup.lab.close()
    section = report(results, args.runs, args.outages, args.handshakes, load)
    print()
    print(section)
    if not args.no_write:
        write_section("network", section)
        print(f"written to {RESULTS}")


if __name__ == "__main__":
    main()
