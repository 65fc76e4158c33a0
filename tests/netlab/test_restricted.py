"""Calls that must relay although a direct path exists: a relay-only app, a TCP-443 firewall.

* An app whose ``iceTransportPolicy`` is ``relay`` (set in an apps file): the cone
  site and a public host, which connect directly under the STUN-only server (the
  control in :mod:`test_nat`), meet only through coturn. tavkit's client applies the
  policy ``enter`` hands it (it gathers relay candidates only), and the server strips
  every other candidate from the signals anyway; so each side receives only ``typ
  relay`` candidates, and the selected pair is relay to relay at both ends.
* A site whose firewall lets out only new TCP connections to port 443 (``fw``, added
  to the lab here): no UDP at all, so neither a direct pair nor TURN over UDP or TCP
  3478 can work. A second coturn listens only for TLS on ``10.200.0.1:443``
  (``--no-udp --no-tcp --no-dtls`` as test-only flags, so it does not collide with the
  first on 3478; its own relay ports), with a certificate for that address from a
  throwaway CA made here; this case's tavkit server hands out only
  ``turns:10.200.0.1:443?transport=tcp``. tavkit itself must be reachable through the
  same firewall, so it listens on 443 as well, on a second public address
  (``10.200.0.2``), as it would behind nginx: the firewall's rule is exactly "TCP
  443", with no hole made for tavkit.

aioice opens TURN over TLS with ``ssl=True`` (``aioice/turn.py``,
``create_turn_endpoint``: ``loop.create_connection(..., ssl=ssl)``), which is Python's
default context: it checks the chain and that the certificate names the address
dialled. The clients trust the throwaway CA through ``SSL_CERT_FILE``, which that
context reads (OpenSSL's default verify paths); no check is switched off. aiortc uses
only the first TURN URL it can parse (``aiortc/rtcicetransport.py``,
``connection_kwargs``), so the ``turns:`` URL is the only TURN entry here.
"""

from __future__ import annotations

import datetime
import ipaddress
import json
import re
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from .conftest import (
    APP_ID,
    APP_KEY,
    TURN_ENV,
    TURN_PORT,
    TURN_SECRET,
    Call,
    LabServer,
    Report,
    start_coturn,
    start_tavkit,
    turn_config,
)
from .lab import LAB_NETWORK, PUBLIC_IP, NatLab, Site

pytestmark = pytest.mark.netlab

CONNECT_WAIT = 30.0
"""The most a call that must connect may take before the client reports failure."""
PROBE_TIMEOUT = 3.0
"""How long the reachability probe waits for a TCP handshake or a STUN answer."""
LOG_WAIT = 15.0
"""How long coturn's log is watched for a session's lines once its client has gone."""
TLS_PORT = 443
SIGNALING_IP = "10.200.0.2"
TLS_RELAY_PORTS = ("40000", "40999")  # apart from the first coturn's 49152-65535

TLS_ENV = {
    "TAVKIT_TURN_SECRET": TURN_SECRET,
    "TAVKIT_ICE_SERVERS": f"turns:{PUBLIC_IP}:{TLS_PORT}?transport=tcp",
    "TAVKIT_ICE_ALLOWED_NETWORKS": LAB_NETWORK,
}
"""The TLS-only server's ICE settings; the TLS coturn's config is made from the same."""

PROBE = """
import json, socket, sys
host, timeout, turn_host, turn_port = sys.argv[1], float(sys.argv[2]), *sys.argv[3:]
def tcp(address, port):
    try:
        socket.create_connection((address, port), timeout=timeout).close()
        return True
    except OSError:
        return False
def stun(address, port):
    request = bytes.fromhex("000100002112a442") + bytes(12)  # a STUN binding request
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.settimeout(timeout)
        sock.sendto(request, (address, port))
        try:
            return sock.recv(2048)[:2] == bytes.fromhex("0101")
        except OSError:
            return False
print(json.dumps({
    "tcp443": tcp(host, 443),
    "turnTcp": tcp(turn_host, int(turn_port)),
    "turnUdp": stun(turn_host, int(turn_port)),
}))
"""
"""Run in a site's host: does tavkit's TCP 443 answer, and coturn's port over TCP and UDP?"""


@dataclass(frozen=True)
class TlsFiles:
    """A throwaway CA and a certificate it signed for the TLS coturn's address."""

    ca: Path
    cert: Path
    key: Path


def show(label: str, *reports: Report) -> None:
    """Print the reports' outcome lines (pytest -s shows them; for information)."""
    for report in reports:
        keys = ("userId", "arrived", "iceState", "pair", "gathered", "received", "turn")
        print(f"{label}: " + json.dumps({key: report[key] for key in keys}))


def make_tls_files(directory: Path, address: str) -> TlsFiles:
    """A CA and a server certificate for ``address`` (an IP SAN), valid for a day."""
    now = datetime.datetime.now(datetime.UTC)
    valid = (now - datetime.timedelta(minutes=5), now + datetime.timedelta(days=1))
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "tavkit netlab test CA")])
    ca = (
        x509.CertificateBuilder()
        .subject_name(ca_name)
        .issuer_name(ca_name)
        .public_key(ca_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(valid[0])
        .not_valid_after(valid[1])
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(
            x509.KeyUsage(False, False, False, False, False, True, True, False, False),
            critical=True,  # keyCertSign and cRLSign only
        )
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(ca_key.public_key()), False)
        .sign(ca_key, hashes.SHA256())
    )
    key = ec.generate_private_key(ec.SECP256R1())
    cert = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, address)]))
        .issuer_name(ca_name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(valid[0])
        .not_valid_after(valid[1])
        .add_extension(
            x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address(address))]), False
        )
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), False)
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()), False
        )
        .sign(ca_key, hashes.SHA256())
    )
    files = TlsFiles(directory / "ca.pem", directory / "cert.pem", directory / "key.pem")
    files.ca.write_bytes(ca.public_bytes(serialization.Encoding.PEM))
    files.cert.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    files.key.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    files.key.chmod(0o600)
    return files


@pytest.fixture(scope="module")
def relay_only_server(
    nat_lab: NatLab, coturn: Path, tmp_path_factory: pytest.TempPathFactory
) -> LabServer:
    """A tavkit server with STUN and TURN whose one app has ``iceTransportPolicy: relay``."""
    workdir = tmp_path_factory.mktemp("tavkit-relay-only")
    apps = workdir / "apps.json"
    apps.write_text(
        json.dumps([{"sdkAppId": APP_ID, "key": APP_KEY, "iceTransportPolicy": "relay"}])
    )
    apps.chmod(0o600)
    flags = ["--apps-file", str(apps)]
    return start_tavkit(nat_lab, workdir, "relay-only", TURN_ENV, port=8082, flags=flags)


@pytest.fixture(scope="module")
def tls_files(tmp_path_factory: pytest.TempPathFactory) -> TlsFiles:
    """The TLS coturn's certificate and key, and the CA the clients trust."""
    return make_tls_files(tmp_path_factory.mktemp("tls"), PUBLIC_IP)


@pytest.fixture(scope="module")
def coturn_tls(
    nat_lab: NatLab, tls_files: TlsFiles, tmp_path_factory: pytest.TempPathFactory
) -> Path:
    """A second coturn, for TLS on 443 only; returns its (verbose: per-session) log."""
    config = turn_config(
        TLS_ENV,
        relay_ip=PUBLIC_IP,
        cert=str(tls_files.cert),
        pkey=str(tls_files.key),
        min_port=TLS_RELAY_PORTS[0],
        max_port=TLS_RELAY_PORTS[1],
    )
    assert f"tls-listening-port={TLS_PORT}" in config, config
    flags = ("--no-udp", "--no-tcp", "--no-dtls", "--verbose")
    ready = f"TLS listener opened on : {PUBLIC_IP}:{TLS_PORT}"
    workdir = tmp_path_factory.mktemp("coturn-tls")
    return start_coturn(nat_lab, workdir, config, *flags, ready=ready)


@pytest.fixture(scope="module")
def firewalled(nat_lab: NatLab) -> Site:
    """The site ``fw``: a cone NAT whose firewall lets out only TCP to port 443."""
    return nat_lab.add_site("fw", "cone", tcp_ports=(TLS_PORT,))


@pytest.fixture(scope="module")
def tls_server(
    nat_lab: NatLab, coturn_tls: Path, tmp_path_factory: pytest.TempPathFactory
) -> LabServer:
    """A tavkit server on ``10.200.0.2:443`` handing out only coturn's ``turns:`` URL."""
    nat_lab.add_public_address(SIGNALING_IP)
    workdir = tmp_path_factory.mktemp("tavkit-tls")
    env = {"TAVKIT_APPS": f"{APP_ID}:{APP_KEY}", **TLS_ENV}
    return start_tavkit(nat_lab, workdir, "tls", env, host=SIGNALING_IP, port=TLS_PORT)


def probe(nat_lab: NatLab, site: str) -> dict[str, bool]:
    """What :data:`PROBE` finds reachable from ``site``'s host."""
    argv = [sys.executable, "-c", PROBE, SIGNALING_IP, str(PROBE_TIMEOUT), PUBLIC_IP]
    argv.append(str(TURN_PORT))
    process = nat_lab.spawn(nat_lab.host(site), argv)
    out, err = process.communicate(timeout=PROBE_TIMEOUT * 3 + 30)
    assert process.returncode == 0, err
    found: dict[str, bool] = json.loads(out)
    return found


def tls_sessions(log: Path, user_id: str) -> dict[str, tuple[str, str]]:
    """coturn sessions of ``user_id`` that have closed: ``{id: (method, "local remote")}``.

    Read from ``--verbose`` lines: ``session ID: new, ..., username=<EXPIRY:USER>, ...,
    method=TLSv1.3`` and ``session ID: closed (2nd stage), user <EXPIRY:USER> ...,
    local IP:PORT, remote IP:PORT, reason: ...``.
    """
    text = log.read_text(errors="replace")
    user = rf"\d+:{re.escape(user_id)}"
    methods = dict(
        re.findall(rf"session (\d+): new, realm=<[^>]*>, username=<{user}>, .*method=(\S+)", text)
    )
    closed = re.findall(
        rf"session (\d+): closed \(2nd stage\), user <{user}> .*local (\S+), remote (\S+),", text
    )
    return {sid: (methods.get(sid, ""), f"{local} {remote}") for sid, local, remote in closed}


def test_a_relay_only_app_meets_only_through_the_relay(
    relay_only_server: LabServer, call: Call
) -> None:
    """Relay-only app, cone site to public host: frames arrive over a relay-to-relay pair.

    Each side gathered and received only relay candidates, though these two hosts
    connect directly when the policy allows it.
    """
    a, b = call(relay_only_server, "cone", "public", room=1601, within=CONNECT_WAIT)
    show("relay-only", a, b)
    for report in (a, b):
        assert report["arrived"], report
        assert report["iceState"] == "completed", report
        assert report["pair"] is not None, report
        assert (report["pair"]["local"], report["pair"]["remote"]) == ("relay", "relay"), report
        assert report["gathered"] == ["relay"], report
        assert report["received"] == ["relay"], report


def test_the_firewalled_site_reaches_tcp_443_only(
    nat_lab: NatLab, firewalled: Site, tls_server: LabServer, coturn: Path
) -> None:
    """From ``fw`` only TCP 443 gets through; from the cone site coturn's 3478 answers too."""
    assert probe(nat_lab, "cone") == {"tcp443": True, "turnTcp": True, "turnUdp": True}
    assert probe(nat_lab, firewalled.name) == {"tcp443": True, "turnTcp": False, "turnUdp": False}


def test_behind_a_tcp_443_firewall_the_call_relays_over_turn_tls(
    nat_lab: NatLab,
    firewalled: Site,
    tls_server: LabServer,
    coturn_tls: Path,
    tls_files: TlsFiles,
    call: Call,
) -> None:
    """Only TCP 443 out: frames arrive, and the firewalled side relays over TURN/TLS on 443.

    Both ends say so: the client's TURN connection is TLS to ``10.200.0.1:443``, and
    coturn logged the same user's TLS session from the site's public address to 443.
    """
    trust = {"SSL_CERT_FILE": str(tls_files.ca)}
    walled, public = call(
        tls_server, firewalled.name, "public", room=1602, within=CONNECT_WAIT, env=trust
    )
    show("tcp-443", walled, public)
    for report in (walled, public):
        assert report["arrived"], report
        assert report["iceState"] == "completed", report
        assert report["pair"] is not None and "relay" in report["pair"].values(), report
    assert walled["pair"]["local"] == "relay", walled
    turn = walled["turn"]
    assert turn is not None and turn["via"] == "turn/tcp", walled
    assert turn["server"] == f"{PUBLIC_IP}:{TLS_PORT}", walled
    assert turn["tls"] in ("TLSv1.2", "TLSv1.3"), walled
    route = f"{PUBLIC_IP}:{TLS_PORT} {firewalled.wan_ip}:"
    deadline = time.monotonic() + LOG_WAIT  # the client has hung up; coturn logs the close
    while True:
        sessions = tls_sessions(coturn_tls, walled["userId"])
        if any(m.startswith("TLS") and r.startswith(route) for m, r in sessions.values()):
            break
        assert time.monotonic() < deadline, f"no TLS session {route}... of user a: {sessions}"
        time.sleep(0.2)
