"""SFU benchmark: a 6-member room through Janus against the same room as a mesh, and Janus's
forwarding capacity on this machine.

Run from the repository root (Janus installed: ``make janus``)::

    .venv/bin/python bench/sfu.py [--runs 2] [--window 8] [--no-write]

It starts a real Janus (a configuration written by ``tavkit janus config``'s function,
on free ports) and two real ``tavkit serve`` processes, one ``--media-mode mesh`` (the
baseline) and one ``--media-mode sfu`` in front of that Janus, and measures in one run:

1. **Time to first frame of the 3rd..6th joiner.** Six Python members (a 160x120,
   15 fps test pattern and a tone, encode-once VP8 at 150 kbit/s) enter one room one
   after another; for each joiner from the third, the time from its ``start()`` until
   it has decoded a video frame from *every* member already there (the whole grid),
   and from the first of them. Mesh and SFU runs alternate, so machine load hits both.
2. **Upload and CPU per member in the 6-member room.** After the sixth joined and a
   warm-up, over a window: each member's upload (``bytesSent`` of its outbound RTP
   streams, over all its connections), and the CPU time (``/proc``) of the tavkit
   server, of Janus and of the members' process (all six are in this process),
   divided by six.
3. **Janus's forwarding capacity.** One publisher (the same stream, published through
   Janus's API) and a growing number of receive-only subscribers in this process, whose
   encoded frames are dropped before aiortc's decoder (they cost SRTP and the jitter
   buffer only). At each step, over a window: Janus's CPU, this process's CPU, and the
   video frames each subscriber got. Growth stops when Janus uses a core, when delivery
   degrades (a subscriber under 90 % of the frames sent) or when the subscribers' own
   process is the one out of CPU. Subscriptions per core is the tracks Janus forwarded
   (audio and video count one each, as mediasoup's consumers and LiveKit's tracks do)
   divided by its CPU share, at the largest step that delivered everything.

The results are printed and written into ``bench/RESULTS.md`` between the
``<!-- sfu -->`` markers (other sections are left alone).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import queue
import secrets
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from _common import RESULTS, write_section
from _serve import ServeProcess, cpu_seconds, machine, stamp
from aioice.ice import get_host_addresses
from aiortc import RTCPeerConnection, RTCSessionDescription
from av import VideoFrame

from tavkit.auth import gen_user_sig
from tavkit.client import TAvKit, TestPattern
from tavkit.client._publish import Publisher
from tavkit.client.peer import _prefer_vp8
from tavkit.ice import configuration, gather_on
from tavkit.server.sfu.config import JanusOptions, find_janus_libraries, write_config_dir
from tavkit.server.sfu.janus import JanusError, JanusSession, VideoRoomHandle

APP_ID = 1400000021
MEMBERS = 6
WIDTH, HEIGHT, FPS = 160, 120, 15
BITRATE = 150_000
WAIT = 60.0
WARMUP = 3.0
WINDOW = 8.0
STEPS = (4, 8, 16, 24, 32, 48, 64, 96, 128)
FAILED: dict[str, int] = {}
"""Rooms of each mode left out because a join, a first frame or the window timed out."""
MEDIASOUP = "~500 consumers per worker (one core)"
LIVEKIT = "~400 tracks in and out per CPU"


# -- Janus --------------------------------------------------------------------------------


@dataclass(frozen=True)
class Janus:
    """A Janus started for the benchmark."""

    url: str
    api_secret: str
    address: str
    """The address Janus gathers on, which the members gather on too (never loopback)."""
    pid: int


@contextlib.contextmanager
def janus_running(directory: Path) -> Iterator[Janus]:
    """Write a configuration in ``directory`` and run ``janus -F`` on it, on a free port."""
    libraries = find_janus_libraries()
    if libraries is None:
        raise SystemExit("Janus is not installed: run `make janus`")
    addresses = get_host_addresses(use_ipv4=True, use_ipv6=False)
    if not addresses:
        raise SystemExit("no non-loopback IPv4 address: Janus gathers on none other")
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = int(sock.getsockname()[1])
    secret = secrets.token_urlsafe(24)
    options = JanusOptions(
        api_secret=secret,
        library_dir=libraries,
        ws_port=port,
        rtp_min_port=40000,
        rtp_max_port=49999,
        ice_addresses=(addresses[0],),
    )
    write_config_dir(options, directory / "conf")
    janus = shutil.which("janus") or "/usr/bin/janus"
    with (directory / "janus.log").open("wb") as log:
        process = subprocess.Popen(
            [janus, "-F", str(directory / "conf"), "-o"], stdout=log, stderr=subprocess.STDOUT
        )
    try:
        deadline = time.monotonic() + 20
        while True:
            try:
                socket.create_connection(("127.0.0.1", port), timeout=1).close()
                break
            except OSError:
                if time.monotonic() > deadline or process.poll() is not None:
                    raise RuntimeError("janus did not start") from None
                time.sleep(0.05)
        yield Janus(f"ws://127.0.0.1:{port}", secret, addresses[0], process.pid)
    finally:
        process.terminate()
        try:
            process.wait(10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


# -- a room of six --------------------------------------------------------------------------


@dataclass
class RoomRun:
    """One mode's room: the joiners' times to first frame, then the window's figures."""

    grid: dict[int, float] = field(default_factory=dict)
    """Joiner number (3..6) -> seconds until a frame from every member already there."""
    first: dict[int, float] = field(default_factory=dict)
    """Joiner number (3..6) -> seconds until a frame from the first of them."""
    upload_kbps: list[float] = field(default_factory=list)
    """Each member's upload over the window, kbit/s."""
    cpu: dict[str, float] = field(default_factory=dict)
    """Process -> share of one core per member over the window (server, janus, members)."""
    fps: list[float] = field(default_factory=list)
    """Video frames per second each member decoded from each other member."""


async def room_run(url: str, key: str, room: int, address: str, pids: dict[str, int]) -> RoomRun:
    """Six members enter ``room`` one by one; then the upload and CPU window."""
    run = RoomRun()
    kits: list[TAvKit] = []
    try:
        for n in range(MEMBERS):
            firsts: dict[str, float] = {}
            kit = TAvKit(
                url,
                source=TestPattern(width=WIDTH, height=HEIGHT, fps=FPS, variant=n),
                host_addresses=[address],
                video_bitrate=BITRATE,
                on_frame=_first_frames(firsts),
                reporting=False,
            )
            kits.append(kit)
            user = f"m{n}"
            start = time.perf_counter()
            async with asyncio.timeout(WAIT):  # a stuck join fails the run, never hangs it
                await kit.start(
                    sdk_app_id=APP_ID,
                    user_id=user,
                    user_sig=gen_user_sig(APP_ID, key, user),
                    room_id=room,
                )
            if n < 2:
                continue
            others = {f"m{i}" for i in range(n)}
            async with asyncio.timeout(WAIT):
                while not others <= firsts.keys():  # noqa: ASYNC110 (frames arrive in callbacks)
                    await asyncio.sleep(0.01)
            run.grid[n + 1] = max(firsts[o] for o in others) - start
            run.first[n + 1] = min(firsts[o] for o in others) - start
        await asyncio.sleep(WARMUP)
        async with asyncio.timeout(WINDOW + WAIT):
            await window(kits, pids, run)
    finally:
        for kit in kits:
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(WAIT):
                    await kit.aclose()
    return run


async def window(kits: list[TAvKit], pids: dict[str, int], run: RoomRun) -> None:
    """Measure upload, CPU and frames over ``WINDOW`` seconds in the full room."""
    sent = [await _bytes_sent(kit) for kit in kits]
    frames = [_frames(kit) for kit in kits]
    cpu = {name: cpu_seconds(pid) for name, pid in pids.items()}
    own, wall = time.process_time(), time.perf_counter()
    await asyncio.sleep(WINDOW)
    wall = time.perf_counter() - wall
    run.cpu = {name: (cpu_seconds(pid) - cpu[name]) / wall / MEMBERS for name, pid in pids.items()}
    run.cpu["members"] = (time.process_time() - own) / wall / MEMBERS
    for kit, before in zip(kits, sent, strict=True):
        run.upload_kbps.append((await _bytes_sent(kit) - before) * 8 / wall / 1000)
    for kit, before in zip(kits, frames, strict=True):
        after = _frames(kit)
        run.fps += [(after.get(u, 0) - before.get(u, 0)) / wall for u in after]


def _first_frames(firsts: dict[str, float]) -> Any:
    def on_frame(user_id: str, frame: Any) -> None:
        if isinstance(frame, VideoFrame) and user_id not in firsts:
            firsts[user_id] = time.perf_counter()

    return on_frame


def _frames(kit: TAvKit) -> dict[str, int]:
    return {user: stats.video_frames for user, stats in kit.peers_seen.items()}


async def _bytes_sent(kit: TAvKit) -> float:
    """RTP bytes the member sent, over all its connections (mesh links or the SFU's)."""
    total = 0.0
    for connection in kit.connections():
        for stat in (await connection.pc.getStats()).values():
            if getattr(stat, "type", "") == "outbound-rtp":
                total += float(stat.bytesSent)
    return total


# -- Janus's capacity -------------------------------------------------------------------------


@dataclass
class Step:
    """One step of the capacity ramp."""

    subscribers: int
    janus_cpu: float
    """Janus's CPU, share of one core."""
    own_cpu: float
    """The subscribers' (this process's) CPU, share of one core."""
    fps_min: float
    fps_median: float


async def capacity(janus: Janus, seconds: float) -> tuple[list[Step], str]:
    """Grow subscribers on one publisher until Janus or delivery gives out; the steps and why
    the ramp stopped."""
    session = await JanusSession.connect(janus.url, api_secret=janus.api_secret)
    source = TestPattern(width=WIDTH, height=HEIGHT, fps=FPS)
    await source.open()
    assert source.video is not None and source.audio is not None
    publishers = [
        Publisher("video", source.video, encoded=True, video_bitrate=BITRATE),
        Publisher("audio", source.audio, encoded=True),
    ]
    publishing = RTCPeerConnection(configuration())
    subscribers: list[tuple[RTCPeerConnection, VideoRoomHandle, list[int]]] = []
    steps: list[Step] = []
    why = f"stopped at {STEPS[-1]} subscribers, the ramp's end"
    try:
        admin = await session.attach_videoroom()
        room, secret = "capacity", secrets.token_urlsafe(16)
        await admin.create_room(room, secret=secret, publishers=1)
        owner = await session.attach_videoroom()
        joined = await owner.join_publisher(room, id="publisher")
        for publisher in publishers:
            sender = publishing.addTransceiver(publisher.subscribe(), direction="sendonly").sender
            if publisher.kind == "video":
                setattr(sender, "_send_keyframe", publisher.request_keyframe)  # noqa: B010
        _prefer_vp8(publishing)
        gather_on(publishing, [janus.address])
        await publishing.setLocalDescription(await publishing.createOffer())
        answer = await owner.publish(publishing.localDescription.sdp)
        await publishing.setRemoteDescription(RTCSessionDescription(answer, "answer"))
        for publisher in publishers:
            publisher.start()
        for target in STEPS:
            while len(subscribers) < target:
                subscribers.append(await _subscriber(session, room, joined.private_id, janus))
            await asyncio.sleep(WARMUP)
            counts = [c[0] for _, _, c in subscribers]
            janus_cpu, own, wall = cpu_seconds(janus.pid), time.process_time(), time.perf_counter()
            await asyncio.sleep(seconds)
            wall = time.perf_counter() - wall
            fps = [
                (c[0] - before) / wall
                for (_, _, c), before in zip(subscribers, counts, strict=True)
            ]
            step = Step(
                target,
                (cpu_seconds(janus.pid) - janus_cpu) / wall,
                (time.process_time() - own) / wall,
                min(fps),
                statistics.median(fps),
            )
            steps.append(step)
            print(
                f"  {target:3} subscribers: janus {step.janus_cpu * 100:5.1f} % of a core, "
                f"subscribers' process {step.own_cpu * 100:5.1f} %, video fps min "
                f"{step.fps_min:.1f} median {step.fps_median:.1f}",
                flush=True,
            )
            if step.janus_cpu >= 0.9:
                why = f"Janus used a core at {target} subscribers"
                break
            if step.fps_min < 0.9 * FPS:
                limit = "the subscribers' process" if step.own_cpu >= 0.85 else "delivery"
                why = f"delivery degraded at {target} subscribers ({limit} gave out first)"
                break
            if step.own_cpu >= 0.95:
                why = f"the subscribers' own process used a core at {target} subscribers"
                break
        with contextlib.suppress(Exception):
            await admin.destroy_room(room, secret=secret)
    finally:
        for pc, _, _ in subscribers:
            await pc.close()
        for publisher in publishers:
            await publisher.aclose()
        await publishing.close()
        await source.close()
        await session.close()
    return steps, why


async def _subscriber(
    session: JanusSession, room: str, private_id: int | None, janus: Janus
) -> tuple[RTCPeerConnection, VideoRoomHandle, list[int]]:
    """A receive-only subscriber to the publisher whose video frames are counted, not decoded."""
    handle = await session.attach_videoroom()
    async with asyncio.timeout(WAIT):
        while True:
            try:
                offer = await handle.subscribe(room, ["publisher"], private_id=private_id)
                break
            except JanusError as exc:  # 428 until the publisher's connection is up
                if exc.janus_code != 428:
                    raise
                await asyncio.sleep(0.1)
    pc = RTCPeerConnection(configuration())
    count = [0]

    @pc.on("track")
    def on_track(track: Any) -> None:
        for transceiver in pc.getTransceivers():
            if transceiver.receiver.track is track:
                _count_and_drop(transceiver.receiver, count if track.kind == "video" else None)

    await pc.setRemoteDescription(RTCSessionDescription(offer.offer, "offer"))
    for transceiver in pc.getTransceivers():
        transceiver.direction = "recvonly"
    gather_on(pc, [janus.address])
    await pc.setLocalDescription(await pc.createAnswer())
    await handle.start(pc.localDescription.sdp)
    return pc, handle, count


def _count_and_drop(receiver: Any, count: list[int] | None) -> None:
    """Count a receiver's encoded frames where aiortc hands them to its decoder, and drop them."""
    decoder_queue: queue.Queue[Any] = receiver._RTCRtpReceiver__decoder_queue
    put = decoder_queue.put

    def dropping(item: Any, block: bool = True, timeout: float | None = None) -> None:
        if item is None:
            put(item, block, timeout)
        elif count is not None:
            count[0] += 1

    decoder_queue.put = dropping  # type: ignore[method-assign]


# -- report ------------------------------------------------------------------------------------


def _med(values: list[float]) -> float:
    return statistics.median(values) if values else float("nan")


def report(
    runs: dict[str, list[RoomRun]], steps: list[Step], why: str, load: tuple[float, float]
) -> str:
    """The Markdown section for RESULTS.md."""
    mesh, sfu = runs["mesh"], runs["sfu"]
    lines = [
        "## SFU (Janus VideoRoom) against the mesh: a room of six, and Janus's capacity",
        "",
        f"Measured {stamp()} by `bench/sfu.py` on {machine()}; load average {load[0]:.1f} at "
        f"the start and {load[1]:.1f} at the end. Janus {_janus_version()} (Debian's package) "
        f"and two `tavkit serve` processes (mesh, the baseline, and `--media-mode sfu`) on this "
        f"machine; {len(mesh)} rooms of each, alternating. Members: Python clients in one "
        f"process, a {WIDTH}x{HEIGHT} {FPS} fps test pattern and a tone, encode-once VP8 at "
        f"{BITRATE // 1000} kbit/s, gathering on the machine's address (Janus never pairs with "
        "loopback); the media never leaves the machine.",
        *([f"Rooms left out (a step took over {WAIT:.0f} s): {FAILED}."] if FAILED else []),
        "",
        "**Time to first frame of the 3rd..6th joiner** (median over the rooms): from the "
        "joiner's `start()` until it has decoded a video frame from every member already "
        "there (the whole grid), and from the first of them.",
        "",
        "| joiner | mesh, whole grid | SFU, whole grid | SFU / mesh | mesh, first | SFU, first |",
        "| ---: | ---: | ---: | ---: | ---: | ---: |",
    ]
    for n in range(3, MEMBERS + 1):
        m = _med([r.grid[n] for r in mesh])
        s = _med([r.grid[n] for r in sfu])
        mf = _med([r.first[n] for r in mesh])
        sf = _med([r.first[n] for r in sfu])
        lines.append(
            f"| {n} | {m * 1000:.0f} ms | {s * 1000:.0f} ms | {s / m:.2f} | "
            f"{mf * 1000:.0f} ms | {sf * 1000:.0f} ms |"
        )
    up_m = _med([k for r in mesh for k in r.upload_kbps])
    up_s = _med([k for r in sfu for k in r.upload_kbps])
    lines += [
        "",
        f"**Upload and CPU per member, six members** ({WINDOW:.0f} s window after a "
        f"{WARMUP:.0f} s warm-up; medians over the rooms; CPU as a share of one core, each "
        "process's `/proc` CPU time divided by six).",
        "",
        "| | mesh | SFU | SFU / mesh |",
        "| --- | ---: | ---: | ---: |",
        f"| upload per member (RTP `bytesSent`) | {up_m:.0f} kbit/s | {up_s:.0f} kbit/s | "
        f"{up_s / up_m:.2f} |",
    ]
    for name, label in (
        ("server", "tavkit server CPU per member"),
        ("janus", "Janus CPU per member"),
        ("members", "client CPU per member (decoding five streams)"),
    ):
        m = _med([r.cpu.get(name, 0.0) for r in mesh]) * 100
        s = _med([r.cpu.get(name, 0.0) for r in sfu]) * 100
        # A mesh has no SFU: its Janus column is an idle Janus, no baseline to divide by.
        ratio = f"{s / m:.2f}" if name != "janus" and m > 0.05 else "-"
        lines.append(f"| {label} | {m:.1f} % | {s:.1f} % | {ratio} |")
    fps_m = _med([f for r in mesh for f in r.fps])
    fps_s = _med([f for r in sfu for f in r.fps])
    lines += [
        f"| video fps received per stream (sent: {FPS}) | {fps_m:.1f} | {fps_s:.1f} | - |",
        "",
        *_delivery_note(fps_m, fps_s),
        "In the mesh each member uploads its encoded stream once per other member (five "
        "times); through Janus once. Encode-once means the mesh's extra cost is "
        "packetising, encrypting and sending, not encoding. Janus's CPU in the mesh column "
        "is an idle Janus.",
        "",
        "**Janus's forwarding capacity.** One publisher, receive-only subscribers in this "
        f"process (frames counted, not decoded); {why}.",
        "",
        "| subscribers | tracks forwarded | Janus CPU | subscribers' process CPU "
        "| video fps, worst subscriber | median |",
        "| ---: | ---: | ---: | ---: | ---: | ---: |",
    ]
    for step in steps:
        lines.append(
            f"| {step.subscribers} | {2 * step.subscribers} | {step.janus_cpu * 100:.1f} % | "
            f"{step.own_cpu * 100:.0f} % | {step.fps_min:.1f} | {step.fps_median:.1f} |"
        )
    healthy = [s for s in steps if s.fps_min >= 0.9 * FPS and s.janus_cpu > 0]
    if len(healthy) >= 2 and healthy[-1].janus_cpu > healthy[0].janus_cpu:
        low, high = healthy[0], healthy[-1]
        # The slope between the smallest and largest healthy steps: Janus's cost per extra
        # subscription, without its fixed cost (the publisher's ingest, keepalives).
        per_track = (high.janus_cpu - low.janus_cpu) / (2 * (high.subscribers - low.subscribers))
        lines += [
            "",
            f"From {low.subscribers} to {high.subscribers} subscribers Janus's CPU grew by "
            f"{(high.janus_cpu - low.janus_cpu) * 100:.1f} % of a core for "
            f"{2 * (high.subscribers - low.subscribers)} more tracks: about "
            f"**{1 / per_track:.0f} tracks ({1 / per_track / 2:.0f} audio+video subscriptions) "
            f"per core** (at {high.subscribers} subscribers, counting its fixed cost too: "
            f"{2 * high.subscribers / high.janus_cpu:.0f} tracks per core), extrapolated "
            f"linearly, for a {BITRATE // 1000} kbit/s {FPS} fps stream (a camera's bitrate and "
            f"packet rate change it). Published figures: mediasoup {MEDIASOUP}; LiveKit "
            f"{LIVEKIT}. On this machine the Python subscribers, which decrypt every packet, "
            "need far more CPU per track than Janus, so the ramp measures Janus's cost per "
            "track rather than its ceiling.",
        ]
    return "\n".join(lines) + "\n"


def _delivery_note(fps_mesh: float, fps_sfu: float) -> list[str]:
    """A warning when members did not decode what was sent: their CPU then says little."""
    starved = [mode for mode, fps in (("mesh", fps_mesh), ("SFU", fps_sfu)) if fps < 0.5 * FPS]
    if not starved:
        return []
    return [
        f"**Delivery fell short in the {' and '.join(starved)} room(s)**: the members decoded "
        f"under half of the {FPS} fps sent, so their CPU is not a like-for-like figure "
        "(upload, counted at the sender, is).",
        "",
    ]


def _janus_version() -> str:
    try:
        out = subprocess.run(["janus", "--version"], capture_output=True, text=True, timeout=10)
    except OSError:
        return "?"
    for line in out.stdout.splitlines():
        if line.startswith("Janus version:"):
            return line.split("(", 1)[-1].rstrip(")")
    return "?"


# -- main --------------------------------------------------------------------------------------


async def rooms(janus: Janus, data: Path, runs: int) -> dict[str, list[RoomRun]]:
    """Alternate mesh and SFU rooms of six, each on its own ``tavkit serve``."""
    key = secrets.token_hex(32)
    env = {"TAVKIT_JANUS_API_SECRET": janus.api_secret}
    mesh = ServeProcess(data / "mesh", APP_ID, key)
    sfu = ServeProcess(
        data / "sfu", APP_ID, key, "--media-mode", "sfu", "--janus-url", janus.url, env=env
    )
    results: dict[str, list[RoomRun]] = {"mesh": [], "sfu": []}
    with mesh, sfu:
        for n in range(runs):
            for mode, server in (("mesh", mesh), ("sfu", sfu)):
                pids = {"server": server.pid, "janus": janus.pid}
                try:
                    run = await room_run(server.url, key, 2100 + n, janus.address, pids)
                except TimeoutError:
                    print(f"  {mode:4} room {n}: a step took over {WAIT:.0f} s; left out")
                    FAILED[mode] = FAILED.get(mode, 0) + 1
                    continue
                results[mode].append(run)
                grid = " ".join(f"{j}:{t * 1000:.0f}" for j, t in run.grid.items())
                print(
                    f"  {mode:4} room {n}: grid ttff ms {grid}; upload "
                    f"{_med(run.upload_kbps):.0f} kbit/s; cpu/member "
                    + " ".join(f"{k} {v * 100:.1f}%" for k, v in run.cpu.items())
                    + f"; fps {_med(run.fps):.1f}",
                    flush=True,
                )
    return results


async def run_all(runs: int, seconds: float) -> str:
    load = os.getloadavg()[0]
    with tempfile.TemporaryDirectory(prefix="tavkit-bench-sfu-") as directory:
        data = Path(directory)
        with janus_running(data / "janus") as janus:
            print("rooms of six, mesh and SFU")
            results = await rooms(janus, data, runs)
            print("Janus forwarding capacity")
            steps, why = await capacity(janus, seconds)
            print(f"  {why}")
    return report(results, steps, why, (load, os.getloadavg()[0]))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--runs", type=int, default=2, help="rooms of six of each mode")
    parser.add_argument("--window", type=float, default=6.0, help="seconds per capacity step")
    parser.add_argument("--no-write", action="store_true", help="do not touch RESULTS.md")
    args = parser.parse_args()
    # SIGTERM unwinds like Ctrl-C, so Janus and the servers are stopped, not orphaned.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    section = asyncio.run(run_all(max(args.runs, 1), args.window))
    print()
    print(section)
    if not args.no_write:
        write_section("sfu", section)
        print(f"written to {RESULTS}")


if __name__ == "__main__":
    main()
