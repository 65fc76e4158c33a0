"""A real Janus for the SFU tests: Debian's package, started on free ports with our config.

``make janus`` installs the package (``make test`` depends on it). The fixture writes
the folder with :func:`~tavkit.server.sfu.config.write_config_dir`, the function
``tavkit janus config`` calls (``test_config.py`` runs the command itself), starts
``janus -F`` and waits until its API port accepts connections.

Janus never gathers ICE candidates on loopback (``ice.c`` skips ``IFF_LOOPBACK``
interfaces) and libnice will not pair its candidates with a peer's 127.0.0.1, so
Janus and the test's aiortc peers both use this machine's first non-loopback IPv4
address (:func:`host_address`). The packets still never leave the machine: the kernel
delivers traffic to a local address over the loopback device.
"""

from __future__ import annotations

import fcntl
import secrets
import shutil
import socket
import struct
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from tavkit.server.sfu.config import JanusOptions, find_janus_libraries, write_config_dir

START_TIMEOUT = 20.0
STOP_TIMEOUT = 10.0
LOG_TAIL = 60
_SIOCGIFFLAGS = 0x8913
_SIOCGIFADDR = 0x8915
_IFF_UP = 0x1
_IFF_LOOPBACK = 0x8


@dataclass(frozen=True)
class RunningJanus:
    """A Janus started by a test: where its API is, its secret, the media address."""

    url: str
    api_secret: str
    address: str
    """The address Janus gathers on, which the test's peers gather on too."""
    directory: Path
    log: Path


def host_address() -> str | None:
    """This machine's first non-loopback IPv4 address of an interface that is up."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        for _, name in socket.if_nameindex():
            request = struct.pack("256s", name.encode()[:15])
            try:
                flags = struct.unpack("H", fcntl.ioctl(sock, _SIOCGIFFLAGS, request)[16:18])[0]
                if not flags & _IFF_UP or flags & _IFF_LOOPBACK:
                    continue
                raw = fcntl.ioctl(sock, _SIOCGIFADDR, request)
            except OSError:
                continue  # no IPv4 address on this interface
            return socket.inet_ntoa(raw[20:24])
    return None


def free_port() -> int:
    """A TCP port free on 127.0.0.1 right now (Janus cannot bind port 0 and tell us)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def start_janus(directory: Path, port: int, log: Path) -> subprocess.Popen[bytes]:
    """Run ``janus -F directory`` and wait until ``port`` accepts connections."""
    janus = shutil.which("janus") or "/usr/bin/janus"
    with log.open("wb") as out:
        # -o: no colours, so the log reads as text in a failure's output.
        process = subprocess.Popen(
            [janus, "-F", str(directory), "-o"], stdout=out, stderr=subprocess.STDOUT
        )
    deadline = time.monotonic() + START_TIMEOUT
    while time.monotonic() < deadline:
        if process.poll() is not None:
            pytest.fail(f"janus exited with {process.returncode}:\n{tail(log)}")
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            return process
        except OSError:
            time.sleep(0.05)
    stop_janus(process)
    pytest.fail(f"janus did not listen within {START_TIMEOUT} s:\n{tail(log)}")


def stop_janus(process: subprocess.Popen[bytes]) -> None:
    """SIGTERM, then SIGKILL if Janus has not stopped in time."""
    if process.poll() is None:
        process.terminate()
    try:
        process.wait(timeout=STOP_TIMEOUT)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait(timeout=STOP_TIMEOUT)


def tail(log: Path) -> str:
    """The end of Janus's log (NULs and all: Janus pads some lines)."""
    lines = log.read_bytes().replace(b"\0", b"").decode(errors="replace").splitlines()
    return "\n".join(lines[-LOG_TAIL:])


def launch(
    parent: Path, api_secret: str | None = None
) -> tuple[RunningJanus, subprocess.Popen[bytes]]:
    """Write a configuration under ``parent`` and start a Janus on it, on free ports
    (with ``api_secret``, as several Janus behind one tavkit share one; else a new one)."""
    libraries = find_janus_libraries()
    address = host_address()
    if libraries is None:
        pytest.fail("Janus is not installed: run `make janus`")
    if address is None:
        # A failure, not a skip: a machine where the SFU cannot be tested must say so in CI.
        pytest.fail("no non-loopback IPv4 address: Janus gathers on none other")
    directory = parent / "conf"
    port = free_port()
    api_secret = api_secret or secrets.token_urlsafe(24)
    options = JanusOptions(
        api_secret=api_secret,
        library_dir=libraries,
        ws_port=port,
        # libnice picks a free port in the range for each PeerConnection.
        rtp_min_port=40000,
        rtp_max_port=49999,
        ice_addresses=(address,),
    )
    write_config_dir(options, directory)
    log = parent / "janus.log"
    process = start_janus(directory, port, log)
    return RunningJanus(f"ws://127.0.0.1:{port}", api_secret, address, directory, log), process


@pytest.fixture(scope="module")
def janus(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningJanus]:
    """One Janus for the module's tests (each makes rooms of its own), on free ports."""
    running, process = launch(tmp_path_factory.mktemp("janus"))
    try:
        yield running
    finally:
        stop_janus(process)
        print(f"--- janus, last {LOG_TAIL} lines ---\n{tail(running.log)}")
