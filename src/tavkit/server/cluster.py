"""``tavkit cluster``: several ``tavkit serve`` replicas behind HAProxy on this machine.

The layout of ``docs/deploy.md`` ("Several replicas") in one command, to try it or to
point ``tavkit loadtest`` at it: ``replicas`` demo-mode ``tavkit serve`` processes on
free loopback ports, sharing one PostgreSQL schema, one Redis prefix and one data
directory (the socket-token secret and the demo app), and Debian's ``haproxy`` in
front with ``docs/deploy/haproxy.cfg`` (its ``@LISTEN@`` and ``@SERVERS@`` filled in).
It prints the URL once HAProxy answers and stops everything on Ctrl-C or SIGTERM.

A replica that exits (kill one to watch its members move) is reported and the others
carry on; if HAProxy exits the whole cluster stops. Each replica's output goes to
``<data-dir>/replica-<n>.log``, HAProxy's to ``haproxy.log`` beside them.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path
from types import FrameType
from typing import Annotated, Final

import typer

__all__ = ["cluster"]

_START_TIMEOUT: Final = 60.0
_STOP_TIMEOUT: Final = 15.0
_REPO_CONFIG: Final = Path(__file__).resolve().parents[3] / "docs" / "deploy" / "haproxy.cfg"


class _Stop(Exception):
    """Ctrl-C or SIGTERM: stop the cluster."""


def cluster(
    database_url: Annotated[
        str,
        typer.Option(
            envvar="TAVKIT_DATABASE_URL",
            help="PostgreSQL, shared by the replicas: postgresql+asyncpg://user@host/db.",
        ),
    ],
    redis_url: Annotated[
        str,
        typer.Option(envvar="TAVKIT_REDIS_URL", help="Redis, shared by the replicas."),
    ],
    database_schema: Annotated[
        str, typer.Option(help="The replicas' PostgreSQL schema (created if missing).")
    ] = "tavkit_cluster",
    redis_prefix: Annotated[
        str, typer.Option(help="What the replicas' Redis channels start with.")
    ] = "tavkit-cluster:",
    replicas: Annotated[int, typer.Option(min=1, max=16, help="How many replicas.")] = 3,
    host: Annotated[
        str, typer.Option(help="HAProxy's bind address (loopback: the demo mints userSigs).")
    ] = "127.0.0.1",
    port: Annotated[int, typer.Option(min=1, max=65535, help="HAProxy's port.")] = 8090,
    data_dir: Annotated[
        Path, typer.Option(help="The replicas' shared data directory, and the logs.")
    ] = Path("./tavkit-cluster"),
    haproxy_config: Annotated[
        Path,
        typer.Option(help="The HAProxy template (@LISTEN@, @SERVERS@).", show_default=False),
    ] = _REPO_CONFIG,
) -> None:
    """Run REPLICAS demo replicas on PostgreSQL and Redis behind HAProxy, until Ctrl-C."""
    if not database_url.startswith("postgresql"):
        typer.echo("tavkit cluster: replicas share one PostgreSQL database", err=True)
        raise typer.Exit(2)
    from tavkit.server.app import is_loopback

    if not is_loopback(host):
        # The replicas run the demo, which mints userSigs for whoever reaches HAProxy.
        typer.echo("tavkit cluster: the demo cluster listens on loopback only", err=True)
        raise typer.Exit(2)
    if not haproxy_config.is_file():
        typer.echo(f"tavkit cluster: no HAProxy template at {haproxy_config}", err=True)
        raise typer.Exit(2)
    data_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
    env = {
        **os.environ,
        "TAVKIT_DATABASE_URL": database_url,
        "TAVKIT_DATABASE_SCHEMA": database_schema,
        "TAVKIT_REDIS_URL": redis_url,
        "TAVKIT_REDIS_PREFIX": redis_prefix,
    }

    def stop(sig: int, frame: FrameType | None) -> None:
        raise _Stop

    previous = {s: signal.signal(s, stop) for s in (signal.SIGINT, signal.SIGTERM)}
    running: list[subprocess.Popen[bytes]] = []
    code = 0
    try:
        urls = []
        for n in range(replicas):  # one after the other: the first creates the tables
            process, url = _start_replica(n, env, data_dir)
            running.append(process)
            urls.append(url)
            typer.echo(f"replica-{n} on {url} (log {data_dir / f'replica-{n}.log'})")
        proxy = _start_haproxy(haproxy_config, f"{host}:{port}", urls, data_dir)
        running.append(proxy)
        shown = f"[{host}]" if ":" in host else host
        url = f"http://{shown}:{port}"
        _wait_healthy(url, proxy)
        typer.echo(f"tavkit cluster: {replicas} replicas behind HAProxy on {url}/ (Ctrl-C stops)")
        code = _watch(running[:-1], proxy)
    except _Stop:
        typer.echo("tavkit cluster: stopping")
    except _Failed as exc:
        typer.echo(f"tavkit cluster: {exc}", err=True)
        code = 1
    finally:
        for s in previous:  # a second Ctrl-C must not cut the clean-up short
            signal.signal(s, signal.SIG_IGN)
        # Ctrl-C means now: SIGINT stops a replica without the drain (nowhere to go).
        for process in reversed(running):
            with contextlib.suppress(ProcessLookupError):
                process.send_signal(signal.SIGINT if process is not running[-1] else signal.SIGTERM)
        for process in running:
            try:
                process.wait(_STOP_TIMEOUT)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
        for s, handler in previous.items():
            signal.signal(s, handler)
    raise typer.Exit(code)


class _Failed(Exception):
    """A part of the cluster could not start, or HAProxy went away."""


def _start_replica(
    n: int, env: dict[str, str], data_dir: Path
) -> tuple[subprocess.Popen[bytes], str]:
    """Start ``replica-<n>`` (demo mode, a free port); it and its URL once it serves."""
    log = data_dir / f"replica-{n}.log"
    argv = [sys.executable, "-m", "tavkit", "serve", "--demo", "--host", "127.0.0.1"]
    argv += ["--port", "0", "--data-dir", str(data_dir), "--replica-name", f"replica-{n}"]
    with log.open("wb") as out:
        process = subprocess.Popen(argv, env=env, stdout=out, stderr=subprocess.STDOUT)
    deadline = time.monotonic() + _START_TIMEOUT
    while time.monotonic() < deadline:
        text = log.read_text(errors="replace")
        if "tavkit serving on " in text:
            return process, text.split("tavkit serving on ", 1)[1].split()[0]
        if process.poll() is not None:
            raise _Failed(f"replica-{n} exited; see {log}:\n{text[-2000:]}")
        time.sleep(0.1)
    process.kill()
    raise _Failed(f"replica-{n} did not start within {_START_TIMEOUT:g} s; see {log}")


def _start_haproxy(
    template: Path, listen: str, urls: list[str], data_dir: Path
) -> subprocess.Popen[bytes]:
    """Fill the template in, check it with ``haproxy -c``, and run HAProxy in the foreground."""
    servers = "\n".join(
        f"    server replica-{n} {url.removeprefix('http://')} check" for n, url in enumerate(urls)
    )
    config = template.read_text().replace("@LISTEN@", listen).replace("@SERVERS@", servers)
    path = data_dir / "haproxy.cfg"
    path.write_text(config)
    try:
        checked = subprocess.run(["haproxy", "-c", "-f", str(path)], capture_output=True, text=True)
    except FileNotFoundError:
        raise _Failed("haproxy is not installed (make haproxy installs Debian's)") from None
    if checked.returncode != 0:
        raise _Failed(f"haproxy refused {path}:\n{checked.stdout}{checked.stderr}")
    with (data_dir / "haproxy.log").open("wb") as out:
        return subprocess.Popen(
            ["haproxy", "-db", "-f", str(path)], stdout=out, stderr=subprocess.STDOUT
        )


def _wait_healthy(url: str, proxy: subprocess.Popen[bytes]) -> None:
    """Until ``/healthz`` through HAProxy answers 200 (its checks have passed)."""
    deadline = time.monotonic() + _START_TIMEOUT
    while time.monotonic() < deadline:
        with (
            contextlib.suppress(OSError, urllib.error.URLError),
            urllib.request.urlopen(f"{url}/healthz", timeout=2) as response,
        ):
            if response.status == 200:
                return
        if proxy.poll() is not None:
            raise _Failed("haproxy exited; see haproxy.log in the data directory")
        time.sleep(0.2)
    raise _Failed(f"{url}/healthz did not answer 200 within {_START_TIMEOUT:g} s")


def _watch(replicas: list[subprocess.Popen[bytes]], proxy: subprocess.Popen[bytes]) -> int:
    """Report replicas that exit; return (1) if HAProxy does. Ends with :class:`_Stop`."""
    gone: set[int] = set()
    while proxy.poll() is None:
        for n, process in enumerate(replicas):
            if n not in gone and process.poll() is not None:
                gone.add(n)
                typer.echo(
                    f"replica-{n} exited ({process.returncode}); the others carry on", err=True
                )
        time.sleep(0.5)
    typer.echo(f"tavkit cluster: haproxy exited ({proxy.returncode})", err=True)
    return 1
