"""ICE policy: the servers a client is told to use, and which candidates may pass.

Two jobs, both pure functions of the settings:

* :func:`ice_servers_for` builds the ``iceServers`` list that ``enter`` returns. With a
  TURN secret configured, ``turn:``/``turns:`` entries get time-limited credentials in
  the "TURN REST API" scheme that coturn implements (``use-auth-secret``): the username
  is ``"{expiry}:{userId}"`` and the password is base64(HMAC-SHA1(secret, username)),
  so coturn checks them with the shared secret and no call back to us. Given the end
  of the member's own credentials (``until``), the TURN credential ends no later: it
  is as short as the session's right to exist, and ``renewed`` mints a fresh one.
* :func:`filter_candidate`, :func:`filter_sdp` and :func:`filter_signal` drop ICE
  candidates whose address lies outside ``ice_allowed_networks`` before the server
  relays them, so a deployment can keep peers on its own networks (and the tests on
  loopback). An empty list of networks lets everything through.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import ipaddress
import logging
import time
from collections.abc import Mapping, Sequence
from dataclasses import replace
from typing import Any, Final

from tavkit.protocol import CandidateData, DescriptionData, SignalData
from tavkit.server.settings import Network, Settings

__all__ = [
    "MIN_TURN_TTL",
    "both_transports",
    "candidate_address",
    "candidate_type",
    "filter_candidate",
    "filter_sdp",
    "filter_signal",
    "ice_servers_for",
    "turn_credentials",
]

logger = logging.getLogger(__name__)

_TURN_SCHEMES: Final = ("turn:", "turns:")
MIN_TURN_TTL: Final = 60.0
"""The shortest TURN credential minted, so a clock step cannot hand out a dead one."""


# --- ICE servers -------------------------------------------------------------------------


def turn_credentials(secret: str, user_id: str, expiry: int) -> tuple[str, str]:
    """The TURN REST ``(username, credential)`` pair valid until Unix time ``expiry``."""
    username = f"{expiry}:{user_id}"
    digest = hmac.new(secret.encode(), username.encode(), hashlib.sha1).digest()
    return username, base64.b64encode(digest).decode("ascii")


def ice_servers_for(
    settings: Settings, user_id: str, now: float | None = None, *, until: float | None = None
) -> list[dict[str, Any]]:
    """The ``iceServers`` for ``user_id``, in ``RTCIceServer`` shape (``urls`` always a list).

    Entries come from ``settings.ice_servers`` (a URL string or a dict with ``urls`` and
    optional ``username``/``credential``). A TURN entry without its own credentials gets
    minted ones when ``turn_secret`` is set, valid for ``turn_ttl`` seconds (24 h by
    default; the expiry is a whole Unix second, as coturn reads it) or until ``until``
    if that is sooner (the member's credentials' end plus the renewal grace; at least
    :data:`MIN_TURN_TTL` from now). Without a secret such an entry is left out:
    browsers refuse the whole configuration when a TURN server has no credentials.

    How far that bounds a removed member: coturn checks the credential's time on each
    request it authenticates (allocate, refresh, permission, channel bind), not on the
    media itself. An allocation made before the end lives until its next refresh after
    it: by coturn's defaults (allocation lifetime 600 s, permissions 300 s) at most
    about ten minutes past the TURN credential's end. Nothing shorter is possible
    without a call back from coturn.
    """
    now = time.time() if now is None else now
    minted: tuple[str, str] | None = None
    if settings.turn_secret:
        end = now + settings.turn_ttl
        if until is not None:
            end = max(min(end, until), now + MIN_TURN_TTL)
        minted = turn_credentials(settings.turn_secret, user_id, int(end))
    servers: list[dict[str, Any]] = []
    for entry in settings.ice_servers:
        server = _normalise(entry)
        is_turn = any(url.startswith(_TURN_SCHEMES) for url in server["urls"])
        if not is_turn or ("username" in server and "credential" in server):
            servers.append(server)
        elif minted is not None:
            server["username"], server["credential"] = minted
            servers.append(server)
        else:
            logger.warning(
                "ICE server %s has no credentials and no TURN secret is set; skipped",
                server["urls"],
            )
    return servers


def _normalise(entry: str | Mapping[str, Any]) -> dict[str, Any]:
    if isinstance(entry, str):
        return {"urls": both_transports([entry])}
    server = dict(entry)
    urls = server.get("urls")
    server["urls"] = both_transports([urls] if isinstance(urls, str) else list(urls or []))
    return server


def both_transports(urls: Sequence[str]) -> list[str]:
    """Each ``turn:`` URL that names no transport, offered over UDP and over TCP.

    coturn listens on both at the same port, and a client on a network that blocks
    UDP (many corporate ones) can still reach it over TCP; a browser given a bare
    ``turn:`` URL tries UDP only. ``turns:`` (TLS, always TCP) and URLs that already say
    ``?transport=`` are kept as they are.
    """
    out: list[str] = []
    for url in urls:
        if url.startswith("turn:") and "transport=" not in url:
            joiner = "&" if "?" in url else "?"
            out += [f"{url}{joiner}transport=udp", f"{url}{joiner}transport=tcp"]
        else:
            out.append(url)
    return out


# --- candidate filtering -----------------------------------------------------------------


def _candidate_fields(candidate_line: str) -> list[str] | None:
    """The fields after ``candidate:`` of a well-formed line, else None.

    Accepts ``candidate:...`` as trickled and ``a=candidate:...`` as in SDP
    (RFC 8839: foundation, component, transport, priority, address, port, ``typ``, type).
    """
    line = candidate_line.strip().removeprefix("a=")
    if not line.startswith("candidate:"):
        return None
    parts = line[len("candidate:") :].split()
    if len(parts) < 8 or parts[6] != "typ":
        return None
    return parts


def candidate_address(candidate_line: str) -> str | None:
    """The connection address of an ICE candidate line, or None if it is malformed."""
    parts = _candidate_fields(candidate_line)
    return None if parts is None else parts[4]


def candidate_type(candidate_line: str) -> str | None:
    """The type of an ICE candidate line (host, srflx, prflx, relay), or None."""
    parts = _candidate_fields(candidate_line)
    return None if parts is None else parts[7]


def filter_candidate(
    candidate_line: str, allowed_networks: Sequence[Network] | None, *, relay_only: bool = False
) -> bool:
    """Whether a candidate may be relayed: its address is inside an allowed network and,
    under an ``iceTransportPolicy`` of ``relay``, it is a TURN relay candidate.

    Relay-only is the privacy promise that peers never learn each other's addresses, so
    the server keeps it whatever a client gathers: a host, srflx or prflx candidate, or
    a line it cannot read, never reaches the other member. No networks means no address
    restriction. The empty line (end of candidates) always passes.
    A malformed line, a hostname, or an mDNS ``.local`` name is dropped when networks
    are restricted: browsers hide host addresses behind random ``<uuid>.local`` names,
    and the server cannot know which address the peer's resolver will turn that name
    into, so it cannot prove the address is allowed. (Chromium can be told not to hide
    them with ``--disable-features=WebRtcHideLocalIpsWithMdns``.)
    """
    if not candidate_line.strip():
        return True
    if relay_only and candidate_type(candidate_line) != "relay":
        return False
    if not allowed_networks:
        return True
    address = candidate_address(candidate_line)
    if address is None:
        return False
    try:
        ip = ipaddress.ip_address(address)
    except ValueError:  # a hostname, mDNS or otherwise
        return False
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        ip = ip.ipv4_mapped
    return any(ip in network for network in allowed_networks)


def filter_sdp(
    sdp: str, allowed_networks: Sequence[Network] | None, *, relay_only: bool = False
) -> str:
    """``sdp`` without the ``a=candidate`` lines :func:`filter_candidate` refuses.

    Every other line, ``a=end-of-candidates`` included, is kept with its line ending.
    (The ``c=`` lines keep whatever address the client wrote: browsers write 0.0.0.0
    there, and ICE, not ``c=``, decides where media goes.)
    """
    if not allowed_networks and not relay_only:
        return sdp
    return "".join(
        line
        for line in sdp.splitlines(keepends=True)
        if not line.startswith("a=candidate:")
        or filter_candidate(line, allowed_networks, relay_only=relay_only)
    )


def filter_signal(
    data: SignalData, allowed_networks: Sequence[Network] | None, *, relay_only: bool = False
) -> SignalData | None:
    """``signal.data`` as it may be relayed, or None when it is a refused candidate."""
    if not allowed_networks and not relay_only:
        return data
    if isinstance(data, DescriptionData):
        description = data.description
        sdp = filter_sdp(description.sdp, allowed_networks, relay_only=relay_only)
        return DescriptionData(replace(description, sdp=sdp))
    refused = (
        isinstance(data, CandidateData)
        and data.candidate is not None
        and not filter_candidate(data.candidate.candidate, allowed_networks, relay_only=relay_only)
    )
    return None if refused else data
