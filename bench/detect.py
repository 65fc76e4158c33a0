"""Failure detection benchmark: how long until a frozen client is reported gone.

Run from the repository root::

    .venv/bin/python bench/detect.py [--runs 15] [--no-write]

A ``tavkit serve`` process runs with short timers (heartbeat every 0.5 s, timeout
2 s, sweep every 0.1 s). In each run a participant in a subprocess enters a room and
holds its socket with ``ping`` frames; an observer in this process is in the same
room. The bench freezes the participant with SIGSTOP -- its TCP connection stays
open, as with a hung process or a laptop lid closed -- and measures until the
observer receives ``member-left`` with reason ``timeout``. The baseline is the
configured heartbeat timeout: a perfect detector reports the member exactly
``timeout`` seconds after its last heartbeat, that is between ``timeout - interval``
and ``timeout`` after the freeze.

Written into ``bench/RESULTS.md`` between the ``<!-- detect -->`` markers.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import secrets
import signal
import statistics
import sys
import tempfile
import time
from pathlib import Path

import httpx
from _common import RESULTS, socket_offer, write_section
from _serve import ServeProcess, machine, p, stamp
from websockets.asyncio.client import ClientConnection, connect

from tavkit.auth import gen_user_sig

APP_ID = 1400000092
INTERVAL = 0.5
TIMEOUT = 2.0
SWEEP = 0.1
WAIT = 30.0


async def enter_and_open(url: str, key: str, room: int, user: str) -> ClientConnection:
    """Enter ``room`` as ``user`` and open the socket; return it after ``welcome``."""
    headers = {
        "X-TAvKit-SdkAppId": str(APP_ID),
        "X-TAvKit-UserId": user,
        "X-TAvKit-UserSig": gen_user_sig(APP_ID, key, user),
    }
    async with httpx.AsyncClient(base_url=url, timeout=WAIT) as http:
        response = await http.post(f"/v1/rooms/{room}/enter", headers=headers)
        body = response.json()
    ws = await connect(
        body["socketUrl"],
        subprotocols=socket_offer(body["socketToken"]),
        ping_interval=None,
        compression=None,
    )
    welcome = json.loads(await ws.recv())
    assert welcome["type"] == "welcome", welcome
    return ws


async def ping_forever(ws: ClientConnection) -> None:
    """Heartbeat at the server's interval, as a live client does."""
    while True:
        await ws.send(json.dumps({"type": "ping", "t": time.monotonic()}))
        await asyncio.sleep(INTERVAL)


async def hold(url: str, key: str, room: int, user: str) -> None:
    """Subprocess side: enter, say ready, heartbeat until frozen or killed."""
    ws = await enter_and_open(url, key, room, user)
    print("ready", flush=True)
    pinger = asyncio.create_task(ping_forever(ws))
    async for _ in ws:
        pass
    pinger.cancel()


async def one_run(url: str, key: str, room: int) -> float:
    """Seconds from SIGSTOP of the participant to the observer's ``member-left timeout``."""
    observer = await enter_and_open(url, key, room, f"obs{room}")
    pinger = asyncio.create_task(ping_forever(observer))
    child = await asyncio.create_subprocess_exec(
        sys.executable,
        __file__,
        "--hold",
        json.dumps([url, key, room, f"frozen{room}"]),
        stdout=asyncio.subprocess.PIPE,
    )
    assert child.stdout is not None
    try:
        async with asyncio.timeout(WAIT):
            assert (await child.stdout.readline()).strip() == b"ready"
            async for raw in observer:  # wait until the observer has seen it join
                if json.loads(raw).get("type") == "member-joined":
                    break
        # Freeze at a random point of its heartbeat cycle.
        await asyncio.sleep(INTERVAL * (0.2 + 0.6 * secrets.randbelow(1000) / 1000))
        os.kill(child.pid, signal.SIGSTOP)
        frozen = time.monotonic()
        async with asyncio.timeout(WAIT):
            async for raw in observer:
                frame = json.loads(raw)
                if frame.get("type") == "member-left":
                    assert frame["reason"] == "timeout", frame
                    return time.monotonic() - frozen
        raise AssertionError("the observer's socket closed")
    finally:
        child.kill()
        await child.wait()
        pinger.cancel()
        await observer.close()


def report(delays: list[float]) -> str:
    """The Markdown section for RESULTS.md."""
    med, p95 = statistics.median(delays), p(delays, 0.95)
    return (
        "\n".join(
            [
                "## Failure detection: a frozen client reported gone",
                "",
                f"Measured {stamp()} by `bench/detect.py` on {machine()}. `tavkit serve` (SQLite) "
                f"with heartbeat interval {INTERVAL:g} s, timeout {TIMEOUT:g} s, sweep every "
                f"{SWEEP:g} s. A participant in a subprocess holds its socket with `ping` frames; "
                "the bench freezes it with SIGSTOP (its TCP connection stays open) at a random "
                "point of its heartbeat cycle and times until another member receives "
                f"`member-left` with reason `timeout`. {len(delays)} runs.",
                "",
                "| | median | p95 | min | max |",
                "| --- | ---: | ---: | ---: | ---: |",
                f"| tavkit: freeze to `member-left timeout` | {med:.2f} s | {p95:.2f} s | "
                f"{min(delays):.2f} s | {max(delays):.2f} s |",
                f"| baseline: the configured timeout | {TIMEOUT:.2f} s | {TIMEOUT:.2f} s | | |",
                f"| ratio tavkit / timeout | {med / TIMEOUT:.2f} | {p95 / TIMEOUT:.2f} | | |",
                "",
                "A member is due `timeout` seconds after its last frame, which came up to one "
                f"interval ({INTERVAL:g} s) before the freeze; the sweeper then needs up to one "
                "sweep interval to notice and the event reaches the other member over the bus. "
                "So a ratio a little under 1 is the ideal, and anything up to "
                f"{(TIMEOUT + SWEEP) / TIMEOUT:.2f} is on time.",
            ]
        )
        + "\n"
    )


async def run_all(runs: int) -> list[float]:
    key = secrets.token_hex(32)
    delays = []
    with tempfile.TemporaryDirectory(prefix="tavkit-detect-") as data:
        options = (
            "--heartbeat-interval",
            str(INTERVAL),
            "--heartbeat-timeout",
            str(TIMEOUT),
            "--sweep-interval",
            str(SWEEP),
        )
        with ServeProcess(Path(data) / "data", APP_ID, key, *options) as serve:
            for run in range(runs):
                delay = await one_run(serve.url, key, 9000 + run)
                delays.append(delay)
                print(f"  run {run}: {delay * 1000:.0f} ms")
    return delays


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--runs", type=int, default=15)
    parser.add_argument("--no-write", action="store_true", help="do not touch RESULTS.md")
    parser.add_argument("--hold", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.hold:
        asyncio.run(hold(*json.loads(args.hold)))
        return
    section = report(asyncio.run(run_all(args.runs)))
    print()
    print(section)
    if not args.no_write:
        write_section("detect", section)
        print(f"written to {RESULTS}")


if __name__ == "__main__":
    main()
