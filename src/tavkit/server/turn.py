"""A coturn configuration that matches the server's settings (``tavkit turn config``).

tavkit mints TURN credentials in coturn's "TURN REST API" scheme
(:func:`tavkit.server.ice.turn_credentials`), so coturn must run with
``use-auth-secret`` and the same ``static-auth-secret`` as ``TAVKIT_TURN_SECRET``.
:func:`coturn_config` writes that file from the :class:`~tavkit.server.settings.Settings`
and a few relay-only options (:class:`TurnOptions`); it is a pure function, so what
``tavkit turn config`` prints is what the tests check.

Where each line comes from:

* ``static-auth-secret``: ``turn_secret``. Without one there is nothing to match.
* ``realm``: :attr:`TurnOptions.realm`, else the host of the first ``turn:``/``turns:``
  URL in ``ice_servers``.
* ``listening-port`` / ``tls-listening-port``: the ports of those URLs (3478 and 5349
  when a URL gives none), so coturn listens where clients are sent.
* TLS: ``cert``/``pkey`` and a TLS listener when certificates are given; else
  ``no-tls`` and ``no-dtls``. A ``turns:`` URL without certificates is an error.
* ``denied-peer-ip``: every private, loopback, link-local and reserved range
  (:data:`DENIED_PEER_NETWORKS`), so the relay cannot be used to reach the
  operator's own networks, a cloud's metadata address or localhost.
* ``allowed-peer-ip``, the exceptions: a network of ``ice_allowed_networks`` that lies
  inside a denied range (a deployment on a private network tells tavkit which
  addresses its clients have, and the relay must reach them too), and the relay's own
  addresses when they are private (two clients relayed by the same coturn send to each
  other's relayed address, which is coturn's). Loopback, link-local and "this network"
  addresses are never opened (:data:`NEVER_ALLOWED`): coturn reaches loopback peers
  only with ``--allow-loopback-peers``, which this file never sets.
* ``min-port``/``max-port``: the relay port range (coturn's default, 49152-65535).
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Final

from tavkit.server.settings import Network, Settings

__all__ = [
    "DENIED_PEER_NETWORKS",
    "NEVER_ALLOWED",
    "TurnOptions",
    "allowed_peer_networks",
    "coturn_config",
    "ip_range",
    "turn_urls",
]

DEFAULT_PORT: Final = 3478
DEFAULT_TLS_PORT: Final = 5349

DENIED_PEER_NETWORKS: Final[tuple[Network, ...]] = tuple(
    ipaddress.ip_network(text)
    for text in (
        "0.0.0.0/8",  # "this network"
        "10.0.0.0/8",  # private
        "100.64.0.0/10",  # carrier-grade NAT
        "127.0.0.0/8",  # loopback
        "169.254.0.0/16",  # link-local, cloud metadata
        "172.16.0.0/12",  # private
        "192.0.0.0/24",  # IETF protocol assignments
        "192.0.2.0/24",  # documentation
        "192.88.99.0/24",  # 6to4 relay anycast
        "192.168.0.0/16",  # private
        "198.18.0.0/15",  # benchmarking
        "198.51.100.0/24",  # documentation
        "203.0.113.0/24",  # documentation
        "224.0.0.0/4",  # multicast
        "240.0.0.0/4",  # reserved, broadcast
        "::/128",  # unspecified
        "::1/128",  # loopback
        "::ffff:0:0/96",  # IPv4-mapped: would bypass every IPv4 line above
        "64:ff9b::/96",  # NAT64: the same
        "100::/64",  # discard
        "2001::/23",  # IETF protocol assignments
        "2001:db8::/32",  # documentation
        "2002::/16",  # 6to4: embeds IPv4 addresses
        "fc00::/7",  # unique local
        "fe80::/10",  # link-local
        "ff00::/8",  # multicast
    )
)
"""Peer addresses coturn must not relay to (RFC 6890 special-purpose ranges)."""

NEVER_ALLOWED: Final[tuple[Network, ...]] = tuple(
    ipaddress.ip_network(text)
    for text in (
        "0.0.0.0/8",
        "127.0.0.0/8",
        "169.254.0.0/16",
        "224.0.0.0/4",
        "240.0.0.0/4",
        "::/128",
        "::1/128",
        "::ffff:0:0/96",
        "fe80::/10",
        "ff00::/8",
    )
)
"""Ranges no exception opens, whatever the settings say."""

_URL_RE: Final = re.compile(
    r"(?P<scheme>turns?):(?:\[(?P<ipv6>[^\]\s]+)\]|(?P<host>[^:?\[\]\s]+))(?::(?P<port>\d+))?(?:\?\S*)?"
)


@dataclass(frozen=True)
class TurnOptions:
    """What coturn needs beyond tavkit's settings: the relay's own addresses and files.

    Every field has coturn's default or leaves the line out.
    """

    realm: str | None = None
    """The realm; None takes the host of the first TURN URL in ``ice_servers``."""
    min_port: int = 49152
    """Lowest UDP port of relayed addresses."""
    max_port: int = 65535
    """Highest UDP port of relayed addresses."""
    cert: Path | None = None
    """TLS certificate chain (PEM); with ``pkey``, coturn also listens for TLS and DTLS."""
    pkey: Path | None = None
    """The certificate's private key (PEM)."""
    external_ip: str | None = None
    """``PUBLIC`` or ``PUBLIC/PRIVATE``: the address relayed candidates carry when coturn
    sits behind a 1:1 NAT (a cloud VM); None leaves the line out."""
    relay_ips: tuple[str, ...] = ()
    """Addresses coturn relays from (``relay-ip``); empty lets coturn pick."""

    def __post_init__(self) -> None:
        if not 1 <= self.min_port <= self.max_port <= 65535:
            raise ValueError(
                f"relay ports must satisfy 1 <= min <= max <= 65535, not "
                f"{self.min_port}-{self.max_port}"
            )
        if (self.cert is None) != (self.pkey is None):
            raise ValueError("a TLS certificate and its key go together (--cert and --pkey)")
        for name, value in (("realm", self.realm), ("cert", self.cert), ("pkey", self.pkey)):
            if value is not None and not _is_token(str(value)):
                # One line per setting: a space or newline could smuggle in another.
                raise ValueError(f"the {name} must be one word of printable characters")
        for address in (*self.relay_ips, *self._external_addresses()):
            ipaddress.ip_address(address)  # ValueError names the address

    def _external_addresses(self) -> list[str]:
        return self.external_ip.split("/", 1) if self.external_ip else []

    @property
    def advertised_ips(self) -> list[str]:
        """The addresses peers send relayed traffic to: the external one, else relay-ip."""
        if self.external_ip:
            return [self._external_addresses()[0]]
        return list(self.relay_ips)


def coturn_config(settings: Settings, options: TurnOptions | None = None) -> str:
    """The text of a ``turnserver.conf`` for the clients of a server with ``settings``.

    Raises ``ValueError`` when the settings cannot be matched: no TURN secret, no realm
    to be found, a ``turns:`` URL without certificates, TURN URLs that disagree on a
    port (coturn listens on one port per scheme).
    """
    options = options or TurnOptions()
    secret = settings.turn_secret
    if not secret:
        raise ValueError("no TURN secret: set TAVKIT_TURN_SECRET, the secret tavkit mints with")
    if not _is_token(secret):
        raise ValueError("the TURN secret must be one word of printable characters")
    urls = turn_urls(settings.ice_servers)
    realm = options.realm or (urls[0][1] if urls else None)
    if not realm:
        raise ValueError("no realm: give --realm, or a turn: URL in TAVKIT_ICE_SERVERS")
    if not _is_token(realm):
        raise ValueError("the realm must be one word of printable characters")
    port = _one_port(urls, "turn", DEFAULT_PORT)
    tls_port = _one_port(urls, "turns", DEFAULT_TLS_PORT)
    if any(scheme == "turns" for scheme, _, _ in urls) and options.cert is None:
        raise ValueError("a turns: URL needs a TLS listener: give --cert and --pkey")

    lines = [
        "# coturn configuration written by `tavkit turn config`; it matches tavkit's settings.",
        "# It holds the TURN secret: keep it readable by coturn's user only.",
        "",
        "# Credentials: tavkit mints them with the same secret (TURN REST API).",
        "use-auth-secret",
        f"static-auth-secret={secret}",
        f"realm={realm}",
        "fingerprint",
        "stale-nonce=600",
        "",
        "# Listeners: where tavkit's iceServers send clients.",
        f"listening-port={port}",
    ]
    if options.cert is not None and options.pkey is not None:
        lines += [
            f"tls-listening-port={tls_port}",
            f"cert={options.cert}",
            f"pkey={options.pkey}",
            "no-tlsv1",
            "no-tlsv1_1",
        ]
    else:
        lines += ["no-tls", "no-dtls"]
    lines += [
        "",
        "# Relayed addresses.",
        f"min-port={options.min_port}",
        f"max-port={options.max_port}",
    ]
    lines += [f"relay-ip={address}" for address in options.relay_ips]
    if options.external_ip:
        lines.append(f"external-ip={options.external_ip}")
    lines += [
        "",
        "# Peers the relay must not reach: private, loopback, link-local and reserved ranges.",
        "no-multicast-peers",
    ]
    lines += [f"denied-peer-ip={ip_range(network)}" for network in DENIED_PEER_NETWORKS]
    allowed = allowed_peer_networks(settings.ice_allowed_networks, options.advertised_ips)
    if allowed:
        lines += [
            "",
            "# Exceptions: tavkit's allowed candidate networks and the relay's own addresses.",
        ]
        lines += [f"allowed-peer-ip={ip_range(network)}" for network in allowed]
    lines += [
        "",
        "# No telnet CLI, no version in responses.",
        "no-cli",
        "no-software-attribute",
    ]
    return "\n".join(lines) + "\n"


def allowed_peer_networks(
    allowed_networks: Sequence[Network], relay_addresses: Iterable[str] = ()
) -> list[Network]:
    """The exceptions to :data:`DENIED_PEER_NETWORKS`, in order, none inside another.

    A network is an exception when it lies inside a denied range and outside
    :data:`NEVER_ALLOWED`. A network wider than a denied range (``0.0.0.0/0``) opens
    nothing: it says "anywhere", not "these private addresses too".
    """
    candidates = [*allowed_networks]
    candidates += [ipaddress.ip_network(address) for address in relay_addresses]
    exceptions: list[Network] = []
    for network in candidates:
        inside = any(_within(network, denied) for denied in DENIED_PEER_NETWORKS)
        never = any(_overlaps(network, bad) for bad in NEVER_ALLOWED)
        covered = any(_within(network, known) for known in exceptions)
        if inside and not never and not covered:
            exceptions.append(network)
    return exceptions


def ip_range(network: Network) -> str:
    """coturn's spelling of a network: ``first-last``, or one address."""
    first, last = network.network_address, network.broadcast_address
    return str(first) if first == last else f"{first}-{last}"


def _within(network: Network, outer: Network) -> bool:
    if isinstance(network, ipaddress.IPv4Network) and isinstance(outer, ipaddress.IPv4Network):
        return network.subnet_of(outer)
    if isinstance(network, ipaddress.IPv6Network) and isinstance(outer, ipaddress.IPv6Network):
        return network.subnet_of(outer)
    return False


def _overlaps(a: Network, b: Network) -> bool:
    return a.version == b.version and (_within(a, b) or _within(b, a))


def _is_token(text: str) -> bool:
    return bool(text) and all(33 <= ord(c) <= 126 for c in text)


def turn_urls(entries: Iterable[object]) -> list[tuple[str, str, int | None]]:
    """``(scheme, host, port)`` of every ``turn:``/``turns:`` URL, in order."""
    found = []
    for entry in entries:
        if isinstance(entry, str):
            urls: list[object] = [entry]
        elif isinstance(entry, Mapping):
            raw = entry.get("urls")
            urls = [raw] if isinstance(raw, str) else list(raw or [])
        else:
            urls = []
        for url in urls:
            if not isinstance(url, str) or not url.startswith(("turn:", "turns:")):
                continue
            match = _URL_RE.fullmatch(url)
            if match is None:
                raise ValueError(f"cannot read the TURN URL {url!r}")
            host = match["ipv6"] or match["host"]
            port = int(match["port"]) if match["port"] else None
            if port is not None and not 1 <= port <= 65535:
                raise ValueError(f"bad port in the TURN URL {url!r}")
            found.append((match["scheme"], host, port))
    return found


def _one_port(urls: list[tuple[str, str, int | None]], scheme: str, default: int) -> int:
    ports = {port or default for s, _, port in urls if s == scheme}
    if len(ports) > 1:
        raise ValueError(
            f"the {scheme}: URLs name ports {sorted(ports)}; coturn listens on one per scheme"
        )
    return ports.pop() if ports else default
