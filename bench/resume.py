"""Resume benchmark: how long a client takes to get its socket back after the network cut it.

Run from the repository root::

    .venv/bin/python bench/resume.py [--runs 30] [--no-write]

A ``tavkit serve`` process (SQLite) and, between it and client A, the TCP relay the
client tests use (``tavkit.testing.relay.TcpRelay``), which can reset every connection at
once. A enters through the relay and holds its socket with the Python client's
:class:`~tavkit.client.session.SignalingSocket`, which reconnects with the same token
when its connection drops. Member B, connected directly, sends A a ``signal`` every
25 ms. Each run resets A's connection and times, from the reset:

* until A's ``welcome`` with ``resumed: true`` (the membership is back), and
* until the first ``signal`` from B arrives on the resumed socket.

The baseline, measured in the same run through the same relay, is opening a fresh
socket: connect with a new token until ``welcome``.

Written into ``bench/RESULTS.md`` between the ``<!-- resume -->`` markers.
"""

from __future__ import annotations

import argparse
import asyncio
import secrets
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

import httpx
from _common import RESULTS, write_section
from _serve import ServeProcess, machine, p, stamp

from tavkit.auth import gen_user_sig
from tavkit.client.session import SignalingSocket
from tavkit.protocol import Leave, Ping, ServerMessage, SignalFrom, SignalTo, Welcome
from tavkit.protocol.messages import CandidateData, IceCandidate
from tavkit.testing.relay import TcpRelay

APP_ID = 1400000093
ROOM = 4242
WAIT = 30.0
SIGNAL_EVERY = 0.025
HEARTBEAT_EVERY = 2.0
BETWEEN = 1.2
"""Seconds between two cuts: more than the client's ``_STABLE_AFTER`` (1 s). A socket
dropped sooner after a resume counts as a server dropping it at once and backs off
(0.1, 0.2, ... 2 s): at 0.2 s apart the runs measured that backoff, then the socket
gave up."""


async def enter(http: httpx.AsyncClient, key: str, user: str, room: int) -> dict[str, Any]:
    """REST enter; the answer's ``socketUrl`` names whichever host ``http`` talked to."""
    headers = {
        "X-TAvKit-SdkAppId": str(APP_ID),
        "X-TAvKit-UserId": user,
        "X-TAvKit-UserSig": gen_user_sig(APP_ID, key, user),
    }
    response = await http.post(f"/v1/rooms/{room}/enter", headers=headers)
    response.raise_for_status()
    body: dict[str, Any] = response.json()
    return body


class Watcher:
    """A's frames with their arrival times, so a run can wait for the next ones."""

    def __init__(self) -> None:
        self.events: list[tuple[float, ServerMessage]] = []
        self.changed = asyncio.Event()

    def __call__(self, message: ServerMessage) -> None:
        self.events.append((time.monotonic(), message))
        self.changed.set()

    async def first_after(self, start: int, want: type, **attrs: Any) -> float:
        """Arrival time of the first frame of type ``want`` (with ``attrs``) from ``start``."""
        async with asyncio.timeout(WAIT):
            while True:
                for at, message in self.events[start:]:
                    if isinstance(message, want) and all(
                        getattr(message, k) == v for k, v in attrs.items()
                    ):
                        return at
                self.changed.clear()
                await self.changed.wait()


async def run_all(runs: int) -> dict[str, list[float]]:
    key = secrets.token_hex(32)
    results: dict[str, list[float]] = {"resume": [], "first": [], "fresh": []}
    with (
        tempfile.TemporaryDirectory(prefix="tavkit-resume-") as data,
        ServeProcess(Path(data) / "data", APP_ID, key) as serve,
    ):
        port = int(serve.url.rsplit(":", 1)[1])
        async with (
            TcpRelay("127.0.0.1", port) as relay,
            httpx.AsyncClient(base_url=relay.url, timeout=WAIT) as via_relay,
            httpx.AsyncClient(base_url=serve.url, timeout=WAIT) as direct,
        ):
            a_entered = await enter(via_relay, key, "a", ROOM)
            watcher = Watcher()
            a = SignalingSocket(
                a_entered["socketUrl"],
                a_entered["socketToken"],
                watcher,
                lambda code, error: print(f"  A ended: {code} {error}"),
                heartbeat_interval=5.0,
            )
            await a.open()
            b_entered = await enter(direct, key, "b", ROOM)
            b = SignalingSocket(
                b_entered["socketUrl"],
                b_entered["socketToken"],
                lambda m: None,
                lambda code, error: None,
            )
            await b.open()
            probe = CandidateData(IceCandidate("", "probe", None))

            async def chatter() -> None:
                while True:
                    await b.send(SignalTo("a", probe))
                    await asyncio.sleep(SIGNAL_EVERY)

            async def heartbeat() -> None:
                # A's contract heartbeat, as TAvKit's heartbeat task sends it: the runs
                # now last longer than the server's heartbeat timeout (15 s).
                while True:
                    await a.send(Ping(time.time()))
                    await asyncio.sleep(HEARTBEAT_EVERY)

            talker = asyncio.create_task(chatter())
            beating = asyncio.create_task(heartbeat())
            try:
                await watcher.first_after(0, SignalFrom)
                for run in range(runs + 1):
                    mark = len(watcher.events)
                    cut = time.monotonic()
                    assert relay.cut() >= 1
                    back = await watcher.first_after(mark, Welcome, resumed=True)
                    resumed_at = len(watcher.events)
                    first = await watcher.first_after(resumed_at - 1, SignalFrom)
                    fresh = await fresh_open(via_relay, key, run)
                    if run:  # the first of each is a warm-up
                        results["resume"].append(back - cut)
                        results["first"].append(first - cut)
                        results["fresh"].append(fresh)
                    print(
                        f"  run {run}: resumed {(back - cut) * 1000:.1f} ms, first signal "
                        f"{(first - cut) * 1000:.1f} ms, fresh open {fresh * 1000:.1f} ms"
                    )
                    await asyncio.sleep(BETWEEN)
            finally:
                talker.cancel()
                beating.cancel()
                await a.aclose()
                await b.aclose()
    return results


async def fresh_open(http: httpx.AsyncClient, key: str, run: int) -> float:
    """Seconds from connecting a new socket (fresh token, through the relay) to ``welcome``."""
    entered = await enter(http, key, f"fresh{run}", ROOM + 1 + run)
    socket = SignalingSocket(
        entered["socketUrl"], entered["socketToken"], lambda m: None, lambda c, e: None
    )
    start = time.monotonic()
    welcome = await socket.open()
    took = time.monotonic() - start
    assert not welcome.resumed
    await socket.send(Leave())
    await socket.aclose()
    return took


def report(results: dict[str, list[float]]) -> str:
    """The Markdown section for RESULTS.md."""

    def ms(values: list[float], q: float) -> str:
        return f"{p(values, q) * 1000:.1f} ms"

    fresh = results["fresh"]
    rows = [
        ("reset to `welcome` (`resumed: true`)", results["resume"]),
        ("reset to the first `signal` on the resumed socket", results["first"]),
        ("baseline: fresh socket, connect to `welcome`", fresh),
    ]
    lines = [
        "## Resume: a client's socket cut by the network",
        "",
        f"Measured {stamp()} by `bench/resume.py` on {machine()}. `tavkit serve` (SQLite); "
        "client A (the Python client's `SignalingSocket`) goes through a TCP relay that "
        "resets the connection; member B sends A a `signal` every "
        f"{SIGNAL_EVERY * 1000:.0f} ms. {len(fresh)} runs after one warm-up; the baseline "
        "(a fresh socket through the same relay) is measured in the same runs.",
        "",
        "| | median | p95 | ratio to fresh open (median) |",
        "| --- | ---: | ---: | ---: |",
    ]
    base = statistics.median(fresh)
    for label, values in rows:
        lines.append(
            f"| {label} | {ms(values, 0.5)} | {ms(values, 0.95)} | "
            f"{statistics.median(values) / base:.2f} |"
        )
    lines += [
        "",
        "The client reconnects at once when the connection resets (the next attempts back "
        "off from 100 ms); the server accepts the same token while the member has not timed "
        "out and answers `welcome` with `resumed: true`, so B never sees A leave.",
    ]
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--runs", type=int, default=30)
    parser.add_argument("--no-write", action="store_true", help="do not touch RESULTS.md")
    args = parser.parse_args()
    results = asyncio.run(run_all(args.runs))
    section = report(results)
    print()
    print(section)
    if not args.no_write:
        write_section("resume", section)
        print(f"written to {RESULTS}")


if __name__ == "__main__":
    main()
