"""Where a held signaling socket's memory goes: tracemalloc on ``tavkit serve``, per socket.

Run from the repository root (heavy: under the shared lock on a shared machine)::

    .venv/bin/python bench/socket_memory.py [--sockets 800] [--frames 1] [--top 40]

One ``tavkit serve`` process (SQLite in a temporary directory, default timers) runs
with tracemalloc on (``--frames`` frames per allocation; 1 groups by line, more by
traceback, and slows the server down). A snapshot is taken idle and another while the
load generator (:mod:`tavkit.loadtest`, in this process) holds ``--sockets``
participants with ``ping`` frames (no signals or messages), as ``bench/capacity.py``
does; the difference, divided by the sockets held, is printed by line (or traceback),
biggest first, with the RSS growth per socket beside it. tracemalloc's own
bookkeeping inflates the RSS, so take the RSS figure from ``bench/capacity.py`` (or
``--frames 0``: no tracing, RSS only) and use this to see what to cut.

Nothing is written to ``bench/RESULTS.md``.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import re
import secrets
import signal
import subprocess
import sys
import tempfile
import threading
import tracemalloc
from pathlib import Path

from _serve import raise_nofile, rss_kib

from tavkit.loadtest import LoadConfig, LoadTest

APP_ID = 1400000095
SETTLE = 4.0


def serve(snapshots: str, frames: int, argv: list[str]) -> None:
    """Subprocess side: ``tavkit serve`` with tracemalloc; SIGUSR1 writes a snapshot."""
    count = 0

    def dump(signum: int, frame: object) -> None:
        nonlocal count
        import gc

        gc.collect()
        tracemalloc.take_snapshot().dump(os.path.join(snapshots, f"snap-{count}"))
        print(f"snapshot {count} written", flush=True)
        count += 1

    signal.signal(signal.SIGUSR1, dump)
    if frames:
        tracemalloc.start(frames)
    from tavkit.cli import main

    sys.argv = ["tavkit", *argv]
    main()


def start(data: str, frames: int, key: str) -> tuple[subprocess.Popen[str], str]:
    """Start the traced server; (the process, its URL)."""
    command = [sys.executable, __file__, "--serve", data, str(frames), "--"]
    command += ["serve", "--port", "0", "--data-dir", f"{data}/db"]
    command += ["--app", f"{APP_ID}:{key}", "--log-level", "warning", "--no-rate-limits"]
    process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    assert process.stdout is not None
    for line in process.stdout:
        if match := re.search(r"tavkit serving on (http://\S+)", line):
            return process, match.group(1)
    raise RuntimeError("tavkit serve did not start")


async def measure(args: argparse.Namespace) -> None:
    raise_nofile(args.sockets * 2 + 1024)
    key = secrets.token_hex(32)
    with tempfile.TemporaryDirectory(prefix="tavkit-socket-memory-") as data:
        process, url = await asyncio.to_thread(start, data, args.frames, key)
        written = threading.Semaphore(0)

        def drain() -> None:
            assert process.stdout is not None
            for line in process.stdout:
                if line.startswith("snapshot "):
                    written.release()

        threading.Thread(target=drain, daemon=True).start()

        async def snapshot() -> None:
            if args.frames:
                process.send_signal(signal.SIGUSR1)
                await asyncio.to_thread(written.acquire)

        try:
            await asyncio.sleep(2.0)
            await snapshot()
            idle = rss_kib(process.pid)
            config = LoadConfig(
                url,
                APP_ID,
                key,
                participants=args.sockets,
                rooms=-(-args.sockets // 6),  # six to a room at most (the mesh's limit)
                ramp=args.ramp,
                duration=args.hold,
                signal_interval=0,
                messages=0,
                recovery_timeout=30.0,
                timeout=60.0,
            )
            test = LoadTest(config)

            async def held() -> tuple[int, int]:
                while test.recorder.phase not in ("traffic", "done"):  # noqa: ASYNC110
                    await asyncio.sleep(0.2)
                await asyncio.sleep(SETTLE)
                rss, sockets = rss_kib(process.pid), test.recorder.connected
                await snapshot()
                return rss, sockets

            sampler = asyncio.create_task(held())
            await test.run()
            rss, sockets = await sampler
        finally:
            process.send_signal(signal.SIGTERM)
            process.wait(30)
        print(
            f"RSS idle {idle / 1024:.1f} MiB, holding {sockets} sockets {rss / 1024:.1f} MiB: "
            f"{(rss - idle) / max(sockets, 1):.1f} KiB per socket"
        )
        if args.frames:
            report(Path(data), sockets, args.frames, args.top)


def report(data: Path, sockets: int, frames: int, top: int) -> None:
    """The traced growth per socket, biggest first."""
    before = tracemalloc.Snapshot.load(str(data / "snap-0"))
    after = tracemalloc.Snapshot.load(str(data / "snap-1"))
    key = "lineno" if frames == 1 else "traceback"
    stats = after.compare_to(before, key)
    total = sum(stat.size_diff for stat in stats)
    print(f"traced growth: {total / 1024 / sockets:.1f} KiB per socket")
    for stat in stats[:top]:
        print(f"{stat.size_diff / sockets:7.0f} B  {stat.count_diff / sockets:5.2f} objects")
        for line in stat.traceback.format()[-2 * min(frames, 6) :]:
            print(f"        {line.strip()}")


def main() -> None:
    if len(sys.argv) > 1 and sys.argv[1] == "--serve":
        serve(sys.argv[2], int(sys.argv[3]), sys.argv[5:])
        return
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--sockets", type=int, default=800)
    parser.add_argument("--ramp", type=float, default=80.0, help="participants per second")
    parser.add_argument("--hold", type=float, default=10.0, help="seconds holding everyone")
    parser.add_argument("--frames", type=int, default=1, help="traceback depth; 0: RSS only")
    parser.add_argument("--top", type=int, default=40)
    asyncio.run(measure(parser.parse_args()))


if __name__ == "__main__":
    main()
