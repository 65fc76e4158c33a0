"""HTTPS for ``tavkit serve``: a given certificate, or a self-signed one made for this host.

Browsers give a page the camera only in a secure context: ``https://``, or
``http://localhost``. So a call between two phones on a LAN needs HTTPS even to try
the demo. ``--tls-self-signed`` makes a certificate (``cryptography``, an ECDSA P-256
key) whose subject alternative names are this host's name, ``localhost``, the bind
address and every address the host has, and keeps it in ``<data_dir>/tls/``: the
phones accept it once ("proceed anyway"), and it stays the same across restarts so
they need not accept it again. It is made anew when it is within 30 days of expiry or
no longer names an address the host has now (the laptop moved to another network).

A real deployment gives ``--tls-cert``/``--tls-key`` (e.g. Let's Encrypt's files) or
terminates TLS in nginx (``docs/deploy.md``) and runs tavkit on loopback.
"""

from __future__ import annotations

import datetime
import ipaddress
import os
import socket
from pathlib import Path
from typing import Final

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

__all__ = ["SelfSigned", "host_names", "self_signed"]

VALID_DAYS: Final = 397
"""The longest validity browsers accept for a server certificate (Apple's rule)."""
RENEW_BEFORE: Final = datetime.timedelta(days=30)

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address


class SelfSigned:
    """Where a self-signed certificate and its key live in a data dir."""

    def __init__(self, data_dir: Path) -> None:
        self.directory = data_dir / "tls"
        self.cert = self.directory / "self-signed.crt"
        self.key = self.directory / "self-signed.key"


def _own_addresses() -> set[IPAddress]:
    """The host's addresses as far as the standard library can tell, loopback included.

    The host name's addresses, plus the source address the kernel would use towards a
    private and a public destination (a UDP ``connect`` sends nothing): on a laptop
    whose name resolves only to 127.0.1.1, that is its LAN address.
    """
    found: set[IPAddress] = {ipaddress.ip_address("127.0.0.1"), ipaddress.ip_address("::1")}
    try:
        for info in socket.getaddrinfo(socket.gethostname(), None):
            found.add(ipaddress.ip_address(str(info[4][0]).split("%")[0]))
    except (OSError, ValueError):
        pass
    for family, target in ((socket.AF_INET, "10.255.255.255"), (socket.AF_INET, "192.0.2.1")):
        try:
            with socket.socket(family, socket.SOCK_DGRAM) as probe:
                probe.connect((target, 9))
                found.add(ipaddress.ip_address(probe.getsockname()[0]))
        except (OSError, ValueError):
            pass
    return found


def host_names(bind_host: str) -> tuple[list[str], set[IPAddress]]:
    """The DNS names and IP addresses a certificate for this host should name."""
    names = ["localhost"]
    hostname = socket.gethostname()
    if hostname and hostname not in names:
        names.append(hostname)
    addresses = _own_addresses()
    try:
        bound = ipaddress.ip_address(bind_host.strip("[]"))
        if not bound.is_unspecified:
            addresses.add(bound)
    except ValueError:
        if bind_host and bind_host not in names:
            names.append(bind_host)
    return names, addresses


def _covers(cert: x509.Certificate, addresses: set[IPAddress], now: datetime.datetime) -> bool:
    """Whether ``cert`` is good for another 30 days and names every one of ``addresses``."""
    if cert.not_valid_after_utc - RENEW_BEFORE < now:
        return False
    try:
        san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    except x509.ExtensionNotFound:
        return False
    return addresses <= set(san.get_values_for_type(x509.IPAddress))


def self_signed(data_dir: Path, bind_host: str) -> SelfSigned:
    """The data dir's self-signed certificate, made (again) when missing or out of date.

    The key is written 0600 in a 0700 directory. Returns the paths for uvicorn.
    """
    where = SelfSigned(data_dir)
    names, addresses = host_names(bind_host)
    now = datetime.datetime.now(datetime.UTC)
    if where.cert.is_file() and where.key.is_file():
        try:
            existing = x509.load_pem_x509_certificate(where.cert.read_bytes())
            if _covers(existing, addresses, now):
                return where
        except ValueError:
            pass  # unreadable: make a new one
    where.directory.mkdir(mode=0o700, parents=True, exist_ok=True)
    key = ec.generate_private_key(ec.SECP256R1())
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, f"tavkit on {names[-1]}")])
    sans: list[x509.GeneralName] = [x509.DNSName(name) for name in names]
    sans += [x509.IPAddress(address) for address in sorted(addresses, key=str)]
    cert = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=VALID_DAYS))
        .add_extension(x509.SubjectAlternativeName(sans), critical=False)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(
            x509.ExtendedKeyUsage([x509.oid.ExtendedKeyUsageOID.SERVER_AUTH]), critical=False
        )
        .sign(key, hashes.SHA256())
    )
    key_pem = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )
    descriptor = os.open(where.key, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(descriptor, "wb") as out:
        out.write(key_pem)
    where.cert.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    return where
