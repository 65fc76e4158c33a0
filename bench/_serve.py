"""Helpers of the server-side benchmarks: a ``tavkit serve`` process, /proc readings, the machine.

psutil is not a dependency, so a process's memory and CPU time come straight from
``/proc/<pid>/status`` (VmRSS) and ``/proc/<pid>/stat`` (utime + stime), and the
machine line of RESULTS.md from ``/proc/cpuinfo`` and ``/proc/meminfo``.
"""

from __future__ import annotations

import asyncio
import os
import platform
import re
import resource
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Final

from tavkit.loadtest.report import percentile
from tavkit.server.cli import event_loop_factory, uvicorn_config

__all__ = [
    "ServeProcess",
    "cpu_seconds",
    "machine",
    "p",
    "raise_nofile",
    "rss_kib",
    "serve_like_tavkit",
    "stamp",
]

_TICKS: Final = os.sysconf("SC_CLK_TCK")
_START_TIMEOUT: Final = 120.0


def p(values: list[float], q: float) -> float:
    """The ``q`` quantile (0..1), interpolated; NaN when there are no values."""
    return percentile(values, q)


def machine() -> str:
    """``CPU model, N cores, RAM GiB, Python x.y`` read from /proc."""
    model = "unknown CPU"
    with open("/proc/cpuinfo") as cpuinfo:
        for line in cpuinfo:
            if line.startswith("model name"):
                model = re.sub(r"\s+", " ", line.split(":", 1)[1].strip())
                break
    ram = 0.0
    with open("/proc/meminfo") as meminfo:
        for line in meminfo:
            if line.startswith("MemTotal:"):
                ram = int(line.split()[1]) / 1024 / 1024
                break
    return (
        f"{model}, {os.cpu_count()} cores, {ram:.0f} GiB RAM, "
        f"Python {platform.python_version()}, {platform.machine()}"
    )


def stamp() -> str:
    """The date and time a measurement is labelled with (UTC)."""
    return time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime())


def rss_kib(pid: int) -> int:
    """Resident set size of ``pid`` in KiB (VmRSS)."""
    with open(f"/proc/{pid}/status") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    raise RuntimeError(f"no VmRSS for {pid}")


def cpu_seconds(pid: int) -> float:
    """User plus system CPU time ``pid`` has used, in seconds."""
    with open(f"/proc/{pid}/stat") as stat:
        fields = stat.read().rsplit(")", 1)[1].split()
    # After the command name: state is field 3, utime 14 and stime 15 (1-based).
    return (int(fields[11]) + int(fields[12])) / _TICKS


def raise_nofile(wanted: int) -> int:
    """Raise this process's open-file limit towards ``wanted`` (children inherit it)."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    target = wanted if hard == resource.RLIM_INFINITY else min(wanted, hard)
    if soft < target:
        resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))
    return resource.getrlimit(resource.RLIMIT_NOFILE)[0]


def serve_like_tavkit(app: Any, sock: socket.socket) -> None:
    """Serve the ASGI ``app`` on ``sock`` until killed, as ``tavkit serve`` serves its own
    (:func:`~tavkit.server.cli.uvicorn_config`, the same event loop). The benchmarks'
    baselines run on this, so that a ratio measures tavkit's work, not a slower stack."""
    import uvicorn

    config = uvicorn_config(app, "warning")
    with asyncio.Runner(loop_factory=event_loop_factory()) as runner:
        runner.run(uvicorn.Server(config).serve(sockets=[sock]))


class ServeProcess:
    """``tavkit serve`` as its own process (SQLite in ``data_dir``), so it can be measured."""

    def __init__(
        self,
        data_dir: Path,
        app_id: int,
        key: str,
        *options: str,
        env: Mapping[str, str] | None = None,
    ) -> None:
        self.data_dir = data_dir
        self.app_id = app_id
        self.key = key
        self.options = options
        self.env = dict(env or {})
        """``TAVKIT_*`` variables for the server (a secret kept out of its command line)."""
        self.url = ""
        self.process: subprocess.Popen[str] | None = None

    @property
    def pid(self) -> int:
        """The server's process id."""
        assert self.process is not None
        return self.process.pid

    def start(self, port: int = 0) -> ServeProcess:
        """Start and wait until it prints the URL it serves on."""
        env = {k: v for k, v in os.environ.items() if not k.startswith("TAVKIT_")} | self.env
        self.process = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "tavkit",
                "serve",
                "--port",
                str(port),
                "--data-dir",
                str(self.data_dir),
                "--app",
                f"{self.app_id}:{self.key}",
                "--log-level",
                "warning",
                *self.options,
            ],
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            env=env,
        )
        assert self.process.stdout is not None
        deadline = time.monotonic() + _START_TIMEOUT
        output = []
        for line in self.process.stdout:
            output.append(line)
            match = re.search(r"tavkit serving on (http://\S+)", line)
            if match:
                self.url = match.group(1)
                threading.Thread(target=self._drain, daemon=True).start()
                return self
            if time.monotonic() > deadline:
                break
        raise RuntimeError("tavkit serve did not start:\n" + "".join(output))

    def stop(self) -> None:
        """SIGTERM, then wait (SIGKILL if it hangs)."""
        if self.process is None or self.process.poll() is not None:
            return
        self.process.send_signal(signal.SIGTERM)
        try:
            self.process.wait(30)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()

    def _drain(self) -> None:
        assert self.process is not None and self.process.stdout is not None
        for line in self.process.stdout:
            if "Traceback" in line or "ERROR" in line:
                print(f"  server: {line.rstrip()}", file=sys.stderr)

    def __enter__(self) -> ServeProcess:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.stop()
