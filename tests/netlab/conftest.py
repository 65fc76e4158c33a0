"""NAT lab fixtures: the namespaces, coturn and tavkit in the "public" one, calls across NATs.

``nat_lab`` (session) builds a :class:`~lab.NatLab` with three client sites:
``cone`` (``masquerade``), ``sym1`` and ``sym2`` (``masquerade random``), each one
host behind its own NAT box; addressing in :mod:`lab`'s docstring. It needs root and
``ip``, ``nft`` and ``turnserver`` (``make test`` installs them): without them the
tests fail, they never skip.

``coturn`` starts ``turnserver`` in the public namespace from the text ``tavkit turn
config`` prints for :data:`TURN_ENV` (the settings of the TURN-enabled tavkit
server), plus test-only flags: the listening address, and log, pid and database
files in a temporary directory. No ``--allow-loopback-peers``: every peer is a lab
address, which the config allows through ``TAVKIT_ICE_ALLOWED_NETWORKS``.

``tavkit_servers`` runs two ``tavkit serve`` processes in the public namespace:
``direct`` hands clients coturn as a STUN server only, ``relay`` as STUN and TURN
(credentials minted with the secret). ``call`` runs one client per site at once
(``_client.py``) and returns their JSON reports. :func:`start_coturn` and
:func:`start_tavkit` start further ones for test modules with their own settings.
"""

from __future__ import annotations

import contextlib
import json
import os
import subprocess
import sys
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from tavkit.auth import gen_user_sig

from .browser import LabBrowsers
from .lab import LAB_NETWORK, PUBLIC_IP, LabError, NatLab

HERE = Path(__file__).parent
APP_ID = 1400000151
APP_KEY = "netlabkey0123456789abcdef"
TURN_SECRET = "netlab-turn-secret-0123456789"
TURN_PORT = 3478
START_TIMEOUT = 60.0
REPORT_MARGIN = 60.0  # beyond a client's own wait: its start-up, imports, the media open

TURN_ENV = {
    "TAVKIT_TURN_SECRET": TURN_SECRET,
    "TAVKIT_ICE_SERVERS": f"stun:{PUBLIC_IP}:{TURN_PORT},turn:{PUBLIC_IP}:{TURN_PORT}",
    "TAVKIT_ICE_ALLOWED_NETWORKS": LAB_NETWORK,
}
"""The TURN-enabled server's ICE settings; coturn's config is made from the same."""

DIRECT_ENV = {
    "TAVKIT_ICE_SERVERS": f"stun:{PUBLIC_IP}:{TURN_PORT}",
    "TAVKIT_ICE_ALLOWED_NETWORKS": LAB_NETWORK,
}
"""The STUN-only server's ICE settings: clients learn their public mappings, no relay."""


def clean_env(**extra: str) -> dict[str, str]:
    """This process's environment without any TAVKIT_* variable, plus ``extra``."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("TAVKIT_")}
    return {**env, **extra}


@pytest.fixture(scope="session")
def nat_lab() -> Iterator[NatLab]:
    """The lab's namespaces: public, and the sites ``cone``, ``sym1``, ``sym2``."""
    lab = NatLab()
    try:
        lab.build({"cone": "cone", "sym1": "symmetric", "sym2": "symmetric"})
    except LabError as exc:
        lab.close()
        pytest.fail(f"cannot build the NAT lab: {exc}")
    try:
        yield lab
    finally:
        lab.close()


def turn_config(env: Mapping[str, str] = TURN_ENV, **options: str) -> str:
    """What ``tavkit turn config`` prints for ``env`` (options as ``--name value``)."""
    argv = [sys.executable, "-m", "tavkit", "turn", "config"]
    for name, value in options.items():
        argv += [f"--{name.replace('_', '-')}", value]
    done = subprocess.run(
        argv, env=clean_env(**env), capture_output=True, text=True, timeout=60, check=False
    )
    assert done.returncode == 0, done.stderr
    return done.stdout


@pytest.fixture(scope="session")
def coturn(nat_lab: NatLab, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """coturn listening on the public address; returns its log file."""
    workdir = tmp_path_factory.mktemp("coturn")
    return start_coturn(nat_lab, workdir, turn_config(relay_ip=PUBLIC_IP))


def start_coturn(
    nat_lab: NatLab,
    workdir: Path,
    config_text: str,
    *flags: str,
    ready: str = "Total General servers",
) -> Path:
    """Run coturn with ``config_text`` in the public namespace until it logs ``ready``.

    ``flags`` are further test-only command-line options. Returns the log file.
    """
    config = workdir / "turnserver.conf"
    config.write_text(config_text)
    config.chmod(0o600)
    log = workdir / "turnserver.log"
    argv = ["turnserver", "-c", str(config), "--listening-ip", PUBLIC_IP]  # test-only flags:
    argv += ["--log-file", str(log), "--simple-log", "--no-stdout-log", *flags]
    argv += ["--pidfile", str(workdir / "turnserver.pid"), "--userdb", str(workdir / "turndb")]
    process = nat_lab.spawn(
        nat_lab.public_ns, argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    deadline = time.monotonic() + START_TIMEOUT
    while time.monotonic() < deadline:
        text = log.read_text(errors="replace") if log.exists() else ""
        if ready in text:
            return log
        assert process.poll() is None, f"turnserver exited with {process.returncode}:\n{text}"
        time.sleep(0.1)
    pytest.fail(f"turnserver did not start within {START_TIMEOUT} s")


@dataclass(frozen=True)
class LabServer:
    """A ``tavkit serve`` in the public namespace."""

    name: str
    url: str

    def sig(self, user_id: str) -> str:
        """A valid userSig for ``user_id``."""
        return gen_user_sig(APP_ID, APP_KEY, user_id, 3600)


def _wait_for_url(process: subprocess.Popen[str], log: Path) -> str:
    """The URL ``tavkit serve`` prints once it serves (read from its log file)."""
    deadline = time.monotonic() + START_TIMEOUT
    while time.monotonic() < deadline:
        text = log.read_text(errors="replace")
        if "tavkit serving on " in text:
            return text.split("tavkit serving on ", 1)[1].split()[0]
        assert process.poll() is None, f"tavkit serve exited with {process.returncode}:\n{text}"
        time.sleep(0.1)
    pytest.fail(f"tavkit serve did not start within {START_TIMEOUT} s")


@pytest.fixture(scope="session")
def tavkit_servers(
    nat_lab: NatLab, coturn: Path, tmp_path_factory: pytest.TempPathFactory
) -> dict[str, LabServer]:
    """``direct`` (STUN only) and ``relay`` (STUN and TURN) servers on the public address."""
    started = {}
    for port, (name, ice) in enumerate((("direct", DIRECT_ENV), ("relay", TURN_ENV)), 8080):
        workdir = tmp_path_factory.mktemp(f"tavkit-{name}")
        env = {"TAVKIT_APPS": f"{APP_ID}:{APP_KEY}", **ice}
        started[name] = spawn_tavkit(nat_lab, workdir, env, port=port)
    return {
        name: LabServer(name, _wait_for_url(process, log))
        for name, (process, log) in started.items()
    }


def spawn_tavkit(
    nat_lab: NatLab,
    workdir: Path,
    env: Mapping[str, str],
    *,
    port: int,
    host: str = PUBLIC_IP,
    flags: Sequence[str] = (),
) -> tuple[subprocess.Popen[str], Path]:
    """Start ``tavkit serve`` on ``host:port`` in the public namespace; process and log.

    ``env`` holds its TAVKIT_* settings; ``flags`` more ``serve`` options.
    """
    argv = [sys.executable, "-m", "tavkit", "serve", "--host", host, "--port", str(port)]
    argv += ["--data-dir", str(workdir / "data"), "--log-level", "warning", *flags]
    log = workdir / "serve.log"
    with log.open("w") as out:
        process = nat_lab.spawn(
            nat_lab.public_ns, argv, env=clean_env(**env), stdout=out, stderr=out
        )
    return process, log


def start_tavkit(
    nat_lab: NatLab,
    workdir: Path,
    name: str,
    env: Mapping[str, str],
    *,
    port: int,
    host: str = PUBLIC_IP,
    flags: Sequence[str] = (),
) -> LabServer:
    """:func:`spawn_tavkit`, then wait until it serves."""
    process, log = spawn_tavkit(nat_lab, workdir, env, port=port, host=host, flags=flags)
    return LabServer(name, _wait_for_url(process, log))


Report = dict[str, Any]
Call = Callable[..., tuple[Report, Report]]


@pytest.fixture
def call(nat_lab: NatLab, tmp_path: Path) -> Call:
    """Run a two-party call: ``call(server, site_a, site_b, room=..., within=..., frames=...)``.

    Sites are named as in :meth:`NatLab.host` (a site, or ``public``). Each site's
    host runs ``_client.py`` as user ``a`` or ``b``; both start at once.
    Returns their reports (see ``_client.py``) once both have reported, then lets
    both hang up. A client that reports nothing fails the test with its stderr.
    ``env`` adds variables to both clients' environments.
    """

    def run(
        server: LabServer,
        site_a: str,
        site_b: str,
        *,
        room: int,
        within: float,
        frames: int = 10,
        env: Mapping[str, str] | None = None,
    ) -> tuple[Report, Report]:
        namespaces = [nat_lab.host(site_a), nat_lab.host(site_b)]
        clients = []
        for user, peer, ns in (("a", "b", namespaces[0]), ("b", "a", namespaces[1])):
            options = {
                "server": server.url,
                "sdkAppId": APP_ID,
                "userId": user,
                "userSig": server.sig(user),
                "roomId": room,
                "peer": peer,
                "within": within,
                "frames": frames,
            }
            argv = [sys.executable, str(HERE / "_client.py"), json.dumps(options)]
            log = tmp_path / f"client-{room}-{user}.log"
            with log.open("w") as err:
                process = nat_lab.spawn(
                    ns, argv, env=clean_env(**(env or {})), stdin=subprocess.PIPE, stderr=err
                )
            clients.append((process, log))
        try:
            with ThreadPoolExecutor(2) as pool:
                lines = [pool.submit(_first_line, *client) for client in clients]
                reports = [line.result(within + REPORT_MARGIN) for line in lines]
        finally:
            for process, _ in clients:
                if process.stdin is not None:
                    process.stdin.close()
            for process, _ in clients:
                with contextlib.suppress(subprocess.TimeoutExpired):
                    process.wait(30)  # hangs up and exits on its own; else stopped
                nat_lab.stop(process)
        return reports[0], reports[1]

    return run


def _first_line(process: subprocess.Popen[str], log: Path) -> Report:
    assert process.stdout is not None
    line = process.stdout.readline()
    if not line:
        process.wait(30)
        raise AssertionError(f"the client reported nothing:\n{log.read_text(errors='replace')}")
    report: Report = json.loads(line)
    return report


@pytest.fixture(scope="module")
def lab_browsers(
    nat_lab: NatLab, tavkit_servers: dict[str, LabServer], tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Callable[[str], Any]]:
    """Headless Chromium in a site's host namespace: ``lab_browsers("sym1")`` (see browser.py).

    One per site for the whole module, started on first use, closed at its end. The
    lab servers' origins count as secure, so their pages may open the fake camera.
    """
    origins = [server.url for server in tavkit_servers.values()]
    with LabBrowsers(nat_lab, tmp_path_factory.mktemp("chromium"), origins) as browsers:
        yield browsers
