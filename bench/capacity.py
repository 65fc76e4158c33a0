"""Capacity benchmark: how many heartbeating participants one ``tavkit serve`` process holds.

Run from the repository root::

    .venv/bin/python bench/capacity.py [--participants 3000] [--rooms 500] [--ramp 30]
                                       [--hold 30] [--no-write]

One ``tavkit serve`` process (SQLite in a temporary directory, default timers:
heartbeat every 5 s, timeout 15 s) is measured idle for a few seconds -- the
baseline -- and then while the load test runner (:mod:`tavkit.loadtest`, in this
process) ramps ``--participants`` members into ``--rooms`` rooms of six and holds
them with ``ping`` frames at the server's interval for ``--hold`` seconds (no
signals, no messages). Server memory (VmRSS) and CPU time come from ``/proc``;
memory per connection is the growth over the idle server divided by the members
held. The open-file limit is raised for the bench and the server it starts.

Written into ``bench/RESULTS.md`` between the ``<!-- capacity -->`` markers.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import random
import secrets
import socket
import subprocess
import sys
import tempfile
import time
from contextlib import suppress
from dataclasses import dataclass
from pathlib import Path

from _common import RESULTS, write_section
from _serve import (
    ServeProcess,
    cpu_seconds,
    machine,
    raise_nofile,
    rss_kib,
    serve_like_tavkit,
    stamp,
)
from fastapi import FastAPI, WebSocket, WebSocketDisconnect

from tavkit.loadtest import LoadConfig, LoadReport, LoadTest, Recorder
from tavkit.protocol import MAX_FRAME_BYTES
from tavkit.server.cli import event_loop_factory
from tavkit.server.listen import listening_socket

APP_ID = 1400000094
IDLE_SECONDS = 5.0
INTERVAL = 5.0  # the server's default heartbeat interval, which the generator follows
SETTLE = 5.0
STACKS = ("fastapi", "websockets")
"""The bare servers measured beside tavkit (:func:`serve_baseline`)."""


@dataclass
class Sample:
    """Server memory and CPU share over one window."""

    rss_kib: int
    cpu_percent: float


def window(pid: int, seconds: float) -> Sample:
    """The server's CPU share over ``seconds`` (blocking) and its RSS at the end."""
    cpu0, t0 = cpu_seconds(pid), time.monotonic()
    time.sleep(seconds)
    cpu1, t1 = cpu_seconds(pid), time.monotonic()
    return Sample(rss_kib(pid), (cpu1 - cpu0) / (t1 - t0) * 100)


# -- the floor: a bare ping/pong server ------------------------------------------------------


def serve_baseline(stack: str) -> None:
    """Subprocess side: a server that answers each ``ping`` frame with a ``pong``, and
    does nothing else: no membership, no liveness, no store. Prints its port, then serves.

    ``fastapi``: the same stack as ``tavkit serve`` (uvicorn, uvloop when installed, our
    WebSocket protocol and socket options, no keepalive or compression) and the same
    frames; what a held socket costs it is the floor of what it can cost tavkit on this
    stack. ``websockets``: the ``websockets`` library's own asyncio server on the same
    loop, with no HTTP server or ASGI between the socket and the handler; what the
    heartbeat would cost on a lighter stack."""
    sock = listening_socket("127.0.0.1", 0)
    print(sock.getsockname()[1], flush=True)
    if stack == "fastapi":
        serve_like_tavkit(_fastapi_pong(), sock)
    else:
        with asyncio.Runner(loop_factory=event_loop_factory()) as runner:
            runner.run(_serve_websockets(sock))


def _pong(text: str | bytes) -> str | None:
    frame = json.loads(text)
    return json.dumps({"type": "pong", "t": frame["t"]}) if frame.get("type") == "ping" else None


def _fastapi_pong() -> FastAPI:
    app = FastAPI()

    @app.websocket("/ws")
    async def pong(websocket: WebSocket) -> None:
        await websocket.accept()
        try:
            while True:
                answer = _pong(await websocket.receive_text())
                if answer is not None:
                    await websocket.send_text(answer)
        except WebSocketDisconnect:
            pass

    return app


async def _serve_websockets(sock: socket.socket) -> None:
    from websockets.asyncio.server import ServerConnection, serve
    from websockets.exceptions import ConnectionClosed

    async def pong(websocket: ServerConnection) -> None:
        with suppress(ConnectionClosed):  # the bench's clients leave by closing
            async for message in websocket:
                answer = _pong(message)
                if answer is not None:
                    await websocket.send(answer)

    async with serve(
        pong, sock=sock, ping_interval=None, compression=None, max_size=MAX_FRAME_BYTES
    ) as server:
        await server.serve_forever()


@dataclass
class Floor:
    """The bare server holding the same number of sockets, pinged at the same interval."""

    idle: Sample
    held: Sample
    sockets: int

    @property
    def per_conn_kib(self) -> float:
        """Memory per held socket."""
        return (self.held.rss_kib - self.idle.rss_kib) / max(self.sockets, 1)

    @property
    def per_ping_ms(self) -> float:
        """CPU per heartbeat."""
        pings = max(self.sockets, 1) / INTERVAL
        return (self.held.cpu_percent - self.idle.cpu_percent) / 100 / pings * 1000


async def bare_member(url: str, opened: list[int], stop: asyncio.Event) -> None:
    """One socket on the bare server: a ``ping`` every interval, each pong awaited."""
    from websockets.asyncio.client import connect

    async with connect(url, ping_interval=None, compression=None, open_timeout=60) as ws:
        opened[0] += 1
        await asyncio.sleep(INTERVAL * random.random())  # spread the herd, as the generator
        while not stop.is_set():
            await ws.send(json.dumps({"type": "ping", "t": time.monotonic()}))
            await ws.recv()
            await asyncio.sleep(INTERVAL)


async def measure_floor(stack: str, sockets: int, seconds: float) -> Floor:
    """Hold ``sockets`` on the bare ``stack`` server (a process of its own); sample it."""
    process = await asyncio.create_subprocess_exec(
        sys.executable, __file__, "--serve-baseline", stack, stdout=subprocess.PIPE
    )
    try:
        assert process.stdout is not None
        url = f"ws://127.0.0.1:{int(await process.stdout.readline())}/ws"
        await asyncio.sleep(2.0)
        idle = await asyncio.to_thread(window, process.pid, IDLE_SECONDS)
        stop = asyncio.Event()
        opened = [0]
        members: list[asyncio.Task[None]] = []

        def failed() -> None:
            for member in members:
                if member.done() and member.exception() is not None:
                    raise RuntimeError("a bare socket failed") from member.exception()

        for _ in range(sockets):  # at most 200 handshakes in flight
            members.append(asyncio.create_task(bare_member(url, opened, stop)))
            while len(members) - opened[0] >= 200:
                failed()
                await asyncio.sleep(0.01)
        while opened[0] < sockets:
            failed()
            await asyncio.sleep(0.1)
        await asyncio.sleep(SETTLE)
        held = await asyncio.to_thread(window, process.pid, seconds)
        stop.set()
        for member in members:
            member.cancel()
        await asyncio.gather(*members, return_exceptions=True)
        return Floor(idle, held, opened[0])
    finally:
        process.terminate()
        await process.wait()


def held_seconds(hold: float) -> float:
    """How long the holding server is sampled: the hold less settling and a margin."""
    return max(hold - SETTLE - 2.0, 1.0)


async def hold_sample(test: LoadTest, pid: int, hold: float) -> tuple[Sample, int, int]:
    """Wait for the hold phase, settle, then sample the server; (sample, joined, sockets)."""
    while test.recorder.phase not in ("traffic", "done"):  # noqa: ASYNC110
        await asyncio.sleep(0.2)
    await asyncio.sleep(SETTLE)
    sample = await asyncio.to_thread(window, pid, held_seconds(hold))
    return sample, test.recorder.joined, test.recorder.connected


def report(
    args: argparse.Namespace,
    idle: Sample,
    held: Sample,
    counts: tuple[int, int],
    result: LoadReport,
    ramp_seconds: float,
    generator_cpu: float,
    floors: dict[str, Floor],
) -> str:
    """The Markdown section for RESULTS.md."""
    joined, sockets = counts
    fastapi, lighter = floors["fastapi"], floors["websockets"]
    per_conn = (held.rss_kib - idle.rss_kib) / max(sockets, 1)
    cpu_per_1000 = (held.cpu_percent - idle.cpu_percent) / max(sockets, 1) * 1000
    pings_per_second = max(sockets, 1) / INTERVAL
    per_ping = (held.cpu_percent - idle.cpu_percent) / 100 / pings_per_second * 1000
    ceiling = 100 / max(cpu_per_1000, 1e-9) * 1000
    join = result.latency["join"]
    beat = result.latency["heartbeat"]
    errors = ", ".join(f"{k} x{v}" for k, v in sorted(result.errors.items())) or "none"
    verdict = "PASS" if result.consistency.passed else "FAIL"
    return (
        "\n".join(
            [
                "## Capacity: heartbeating participants held by one server process",
                "",
                f"Measured {stamp()} by `bench/capacity.py` on {machine()}. One `tavkit serve` "
                "process (SQLite, default timers: heartbeat every 5 s, timeout 15 s); the load "
                f"generator (`tavkit.loadtest`) in the bench process ramps {args.participants} "
                f"participants into {args.rooms} rooms at {args.ramp:g}/s and holds them with "
                f"`ping` frames at the server's interval for {args.hold:g} s (no signals or "
                "messages). Both share the same 2 cores, so the generator's CPU is taken from "
                "the server's. Server memory and CPU from /proc.",
                "",
                "| | tavkit holding | baseline: idle server | per connection |",
                "| --- | ---: | ---: | ---: |",
                f"| participants joined / sockets open | {joined} / {sockets} "
                f"(of {args.participants}) | 0 | |",
                f"| server RSS | {held.rss_kib / 1024:.0f} MiB | {idle.rss_kib / 1024:.0f} MiB | "
                f"{per_conn:.0f} KiB |",
                f"| server CPU (share of one core) | {held.cpu_percent:.1f} % | "
                f"{idle.cpu_percent:.1f} % | "
                f"{cpu_per_1000:.2f} % per 1000 |",
                "",
                "The floor, measured in the same run: a bare server that answers each `ping` "
                "with a `pong` and does nothing else, holding as many sockets from the same "
                f"process, pinged every {INTERVAL:g} s. *Bare FastAPI* is tavkit's own stack "
                "(uvicorn, uvloop, tavkit's WebSocket protocol and socket options): the floor "
                "of what a heartbeat can cost tavkit as built. *Bare websockets* is the "
                "`websockets` library's asyncio server on the same loop, no HTTP server or "
                "ASGI in between: what a lighter stack would start from.",
                "",
                "| | tavkit | bare FastAPI | tavkit / bare FastAPI | bare websockets |",
                "| --- | ---: | ---: | ---: | ---: |",
                f"| server CPU per heartbeat | {per_ping:.3f} ms | {fastapi.per_ping_ms:.3f} ms | "
                f"{per_ping / max(fastapi.per_ping_ms, 1e-9):.2f} | "
                f"{lighter.per_ping_ms:.3f} ms |",
                f"| memory per held socket | {per_conn:.0f} KiB | {fastapi.per_conn_kib:.0f} KiB | "
                f"{per_conn / max(fastapi.per_conn_kib, 1e-9):.2f} | "
                f"{lighter.per_conn_kib:.0f} KiB |",
                "",
                f"Ramp took {ramp_seconds:.0f} s (join = REST enter + socket + `welcome`: p50 "
                f"{join.p50:.0f} ms, p95 {join.p95:.0f} ms, p99 {join.p99:.0f} ms). Heartbeat "
                f"RTT while holding: p50 {beat.p50:.1f} ms, p95 {beat.p95:.1f} ms, p99 "
                f"{beat.p99:.1f} ms. Errors: {errors}. Consistency (server's member lists vs "
                f"the generator's): {verdict}. The generator itself used {generator_cpu:.0f} s "
                "of CPU over the run.",
                "",
                f"Holding costs the server {per_ping:.2f} ms of CPU per heartbeat ({sockets} "
                f"sockets, one `ping` per {INTERVAL:g} s each); the server is one event loop, "
                f"so one core bounds it at about {ceiling:.0f} members with these timers. A "
                "`ping` is heard in memory: the heartbeats heard since the last flush are "
                "written once a second in one transaction (one `UPDATE ... WHERE connection_id "
                "IN (...)` per 500), so the database costs one transaction a second rather "
                "than one per `ping` or per group of them, and the store every replica's "
                "sweeper reads is at most a flush behind.",
            ]
        )
        + "\n"
    )


async def run(args: argparse.Namespace) -> str:
    key = secrets.token_hex(32)
    limit = raise_nofile(args.participants * 2 + 1024)
    print(f"open files limit: {limit}")
    with (
        tempfile.TemporaryDirectory(prefix="tavkit-capacity-") as data,
        # Every simulated participant comes from 127.0.0.1, where in life each has an
        # address of its own: the per-address bucket would measure the limiter, not the
        # server. The per-user buckets would not bind (one enter and a beat per user).
        ServeProcess(Path(data) / "data", APP_ID, key, "--no-rate-limits") as serve,
    ):
        await asyncio.sleep(2.0)
        idle = await asyncio.to_thread(window, serve.pid, IDLE_SECONDS)
        print(f"idle: {idle}")
        phases: dict[str, float] = {}
        start = time.monotonic()

        def progress(rec: Recorder) -> None:
            if rec.phase not in phases:
                phases[rec.phase] = time.monotonic() - start
                print(
                    f"  {phases[rec.phase]:6.1f} s {rec.phase}: joined {rec.joined}, "
                    f"errors {sum(rec.errors.values())}",
                    flush=True,
                )

        config = LoadConfig(
            serve.url,
            APP_ID,
            key,
            participants=args.participants,
            rooms=args.rooms,
            ramp=args.ramp,
            duration=args.hold,
            signal_interval=0,
            messages=0,
            recovery_timeout=30.0,
            timeout=60.0,
            on_progress=progress,
        )
        cpu0 = time.process_time()
        test = LoadTest(config)
        sampler = asyncio.create_task(hold_sample(test, serve.pid, args.hold))
        result = await test.run()
        held, joined, sockets = await sampler
        generator_cpu = time.process_time() - cpu0
        print(f"held: {held}, joined {joined}, sockets {sockets}")
        print(result.render())
    floors = {}
    for stack in STACKS:
        floors[stack] = floor = await measure_floor(stack, sockets, held_seconds(args.hold))
        print(
            f"bare {stack}: {floor}, {floor.per_ping_ms:.3f} ms/ping, {floor.per_conn_kib:.0f} KiB"
        )
    ramp_seconds = phases.get("traffic", 0.0) - phases.get("ramp", 0.0)
    return report(args, idle, held, (joined, sockets), result, ramp_seconds, generator_cpu, floors)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--participants", type=int, default=3000)
    parser.add_argument("--rooms", type=int, default=500)
    parser.add_argument("--ramp", type=float, default=30.0, help="participants per second")
    parser.add_argument("--hold", type=float, default=30.0, help="seconds holding everyone")
    parser.add_argument("--no-write", action="store_true", help="do not touch RESULTS.md")
    parser.add_argument("--serve-baseline", choices=STACKS, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.serve_baseline:
        serve_baseline(args.serve_baseline)
        return
    section = asyncio.run(run(args))
    print()
    print(section)
    if not args.no_write:
        write_section("capacity", section)
        print(f"written to {RESULTS}")


if __name__ == "__main__":
    main()
