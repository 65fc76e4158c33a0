"""A Janus configuration directory that matches tavkit (``tavkit janus config --dir DIR``).

``janus -F DIR`` then runs the SFU tavkit drives (``docs/sfu.md``), and nothing else:

* **Only VideoRoom and the WebSocket transport load.** Janus loads every ``.so`` in its
  plugin and transport folders, so DIR gets folders of its own holding one symlink
  each (to the package's ``libjanus_videoroom.so`` and ``libjanus_websockets.so``);
  the logger and event-handler folders are empty. A package upgrade that adds a
  plugin adds nothing here. (Janus's ``disable`` lists would have to name every other
  plugin, and go stale.)
* **Only tavkit may talk to it.** ``api_secret`` gates every request of the Janus API;
  the WebSocket listens on 127.0.0.1 by default; no admin API on any transport. Rooms
  are created by tavkit through the API, never from a file, so the VideoRoom file
  only sets ``string_ids`` (tavkit's room and user ids are strings).
* **Media ports** in ``rtp_port_range``, the range a firewall opens.
* **NAT**: ``ice_enforce_list`` picks the addresses Janus gathers on, ``nat_1_1_mapping``
  rewrites them behind a 1:1 NAT (a cloud VM). Janus never gathers on loopback.
  With ``turn`` (:class:`JanusTurn`), Janus also gathers relayed candidates through
  tavkit's coturn, with a credential minted from tavkit's TURN secret in the "TURN
  REST API" scheme: only for a Janus that sits behind a restrictive firewall itself
  (Janus's own documentation says so). Clients' TURN comes from tavkit, not from here.
* ``protected_folders``: Janus refuses to write recordings or captures there (the
  system folders of Debian's sample, and DIR itself).
* ``debug_level`` at most 4 (:data:`MAX_DEBUG_LEVEL`): from 5 up Janus logs its
  ``api_secret`` and every room's secret.
* ``reclaim_session_timeout`` 0: when tavkit's socket goes, its sessions (and their
  PeerConnections) go at once; nobody else could reclaim them.

:func:`janus_config` is pure (file name -> text) so that what the command writes is
what the tests check; :func:`write_config_dir` puts it on disk with the symlinks.
"""

from __future__ import annotations

import ipaddress
import os
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Final

from tavkit.server.ice import turn_credentials

__all__ = [
    "MAX_DEBUG_LEVEL",
    "PLUGIN_LIBRARY",
    "PROTECTED_FOLDERS",
    "TRANSPORT_LIBRARY",
    "JanusOptions",
    "JanusTurn",
    "find_janus_libraries",
    "janus_config",
    "write_config_dir",
]

PLUGIN_LIBRARY: Final = "libjanus_videoroom.so"
TRANSPORT_LIBRARY: Final = "libjanus_websockets.so"
_LIBRARY_DIRS: Final = (
    "/usr/lib/x86_64-linux-gnu/janus",
    "/usr/lib/aarch64-linux-gnu/janus",
    "/usr/lib/janus",
    "/usr/local/lib/janus",
    "/opt/janus/lib/janus",
)
"""Where packages and source builds put Janus's plugins (Debian's first)."""

MAX_DEBUG_LEVEL: Final = 4
"""Janus's "info" level. From 5 ("verbose") up Janus prints its configuration, the
``api_secret`` included, and each room it creates with the room's secret."""

PROTECTED_FOLDERS: Final = (
    "/bin",
    "/boot",
    "/dev",
    "/etc",
    "/initrd",
    "/lib",
    "/lib32",
    "/lib64",
    "/proc",
    "/sbin",
    "/sys",
    "/usr",
    "/var",
    "/opt/janus/bin",
    "/opt/janus/etc",
    "/opt/janus/lib",
    "/opt/janus/sbin",
)
"""Debian's sample list: folders Janus must never write a recording or capture into."""


@dataclass(frozen=True)
class JanusTurn:
    """A TURN server Janus itself gathers relayed candidates through."""

    host: str
    port: int
    transport: str
    """``udp``, ``tcp`` or ``tls``."""
    username: str
    password: str

    def __repr__(self) -> str:
        return f"JanusTurn({self.transport}:{self.host}:{self.port}, username={self.username!r})"

    @classmethod
    def minted(
        cls,
        secret: str,
        host: str,
        port: int = 3478,
        *,
        transport: str = "udp",
        days: float = 30.0,
        now: float | None = None,
    ) -> JanusTurn:
        """A credential from tavkit's TURN secret (as :func:`~tavkit.server.ice.turn_credentials`
        mints for clients), valid ``days`` days: Janus reads it once, at start."""
        expiry = int((time.time() if now is None else now) + days * 86400)
        username, password = turn_credentials(secret, "janus", expiry)
        return cls(host, port, transport, username, password)


@dataclass(frozen=True)
class JanusOptions:
    """What the configuration says; every default is the safe one."""

    api_secret: str
    """Janus's ``api_secret``: every request must carry it (tavkit's ``--janus-api-secret``)."""
    library_dir: Path = Path(_LIBRARY_DIRS[0])
    """The package's folder holding ``plugins/`` and ``transports/``."""
    # WebSocket transport
    ws_host: str = "127.0.0.1"
    """The address the Janus API listens on: loopback unless tavkit runs elsewhere."""
    ws_port: int = 8188
    # Media
    rtp_min_port: int = 20000
    rtp_max_port: int = 40000
    # NAT
    ice_addresses: tuple[str, ...] = ()
    """Interfaces or addresses to gather on (``ice_enforce_list``); empty: all but loopback."""
    public_ips: tuple[str, ...] = ()
    """``nat_1_1_mapping``: the public addresses host candidates carry behind a 1:1 NAT."""
    turn: JanusTurn | None = None
    # Janus
    session_timeout: int = 60
    debug_level: int = 4
    """Janus's log level, at most :data:`MAX_DEBUG_LEVEL`."""

    def __post_init__(self) -> None:
        if not _is_word(self.api_secret) or len(self.api_secret) < 16:
            raise ValueError("the API secret must be one word of 16 or more printable characters")
        if not 1 <= self.rtp_min_port <= self.rtp_max_port <= 65535:
            raise ValueError(
                "RTP ports must satisfy 1 <= min <= max <= 65535, not "
                f"{self.rtp_min_port}-{self.rtp_max_port}"
            )
        if not 1 <= self.ws_port <= 65535:
            raise ValueError(f"bad WebSocket port {self.ws_port}")
        ipaddress.ip_address(self.ws_host)  # ValueError names it
        for address in self.public_ips:
            ipaddress.ip_address(address)
        for name in self.ice_addresses:
            if not _is_word(name) or "," in name:
                raise ValueError(f"not an interface or address: {name!r}")
        if not 0 <= self.debug_level <= MAX_DEBUG_LEVEL:
            raise ValueError(
                f"the debug level is 0 to {MAX_DEBUG_LEVEL}: above, Janus logs its API secret "
                "and every room's secret"
            )
        if self.session_timeout < 10:
            raise ValueError("a session timeout under 10 s would drop tavkit between keepalives")
        for value in (str(self.library_dir), *(self._turn_words())):
            if not _is_word(value):
                raise ValueError(f"must be one word of printable characters: {value!r}")

    def __repr__(self) -> str:
        return f"JanusOptions(ws={self.ws_host}:{self.ws_port}, api_secret=***)"

    def _turn_words(self) -> list[str]:
        if self.turn is None:
            return []
        if self.turn.transport not in ("udp", "tcp", "tls"):
            raise ValueError("the TURN transport is udp, tcp or tls")
        return [self.turn.host, self.turn.username, self.turn.password]


def janus_config(options: JanusOptions, directory: Path) -> dict[str, str]:
    """The configuration files for ``janus -F directory``: file name -> text."""
    directory = directory.resolve()
    protected = [*PROTECTED_FOLDERS, str(directory)]
    nat = (
        [f'\tice_enforce_list = "{",".join(options.ice_addresses)}"']
        if options.ice_addresses
        else []
    )
    nat.append("\tignore_mdns = true")
    if options.public_ips:
        nat.append(f'\tnat_1_1_mapping = "{",".join(options.public_ips)}"')
    if options.turn is not None:
        turn = options.turn
        nat += [
            f'\tturn_server = "{turn.host}"',
            f"\tturn_port = {turn.port}",
            f'\tturn_type = "{turn.transport}"',
            f'\tturn_user = "{turn.username}"',
            f'\tturn_pwd = "{turn.password}"',
        ]
    core = f"""\
# Janus configuration written by `tavkit janus config`: start it with `janus -F {directory}`.
# It holds the API secret: keep this folder readable by Janus's user (and tavkit's) only.
general: {{
\tconfigs_folder = "{directory}"
\t# Folders of our own: only VideoRoom and the WebSocket transport are in them.
\tplugins_folder = "{directory / "plugins"}"
\ttransports_folder = "{directory / "transports"}"
\tevents_folder = "{directory / "events"}"
\tloggers_folder = "{directory / "loggers"}"
\tdebug_level = {options.debug_level}
\t# Only tavkit talks to Janus, and every request carries this secret.
\tapi_secret = "{options.api_secret}"
\tsession_timeout = {options.session_timeout}
\treclaim_session_timeout = 0
\thide_dependencies = true
\tprotected_folders = [
{_list(protected)}
\t]
}}
certificates: {{
}}
media: {{
\trtp_port_range = "{options.rtp_min_port}-{options.rtp_max_port}"
}}
nat: {{
{chr(10).join(nat)}
}}
plugins: {{
}}
transports: {{
}}
loggers: {{
}}
events: {{
\tbroadcast = false
}}
"""
    websockets = f"""\
# The Janus API for tavkit, on {options.ws_host}:{options.ws_port}; no admin API anywhere.
general: {{
\tjson = "compact"
\tws = true
\tws_port = {options.ws_port}
\tws_ip = "{options.ws_host}"
\twss = false
}}
admin: {{
\tadmin_ws = false
\tadmin_wss = false
}}
"""
    videoroom = """\
# Rooms are created and destroyed by tavkit through the API, each with a secret.
general: {
\tstring_ids = true
}
"""
    return {
        "janus.jcfg": core,
        "janus.transport.websockets.jcfg": websockets,
        "janus.plugin.videoroom.jcfg": videoroom,
    }


def find_janus_libraries(candidates: Sequence[str] = _LIBRARY_DIRS) -> Path | None:
    """The first folder holding Janus's VideoRoom plugin and WebSocket transport."""
    for folder in map(Path, candidates):
        if (folder / "plugins" / PLUGIN_LIBRARY).exists() and (
            folder / "transports" / TRANSPORT_LIBRARY
        ).exists():
            return folder
    return None


def write_config_dir(options: JanusOptions, directory: Path) -> list[Path]:
    """Write the configuration into ``directory`` (created, mode 0700); the paths written.

    Files are 0600 (they hold the API secret). The plugin and transport folders are
    rebuilt with their one symlink each, so running the command again on the same
    folder leaves exactly what it writes.
    """
    for kind, library in (("plugins", PLUGIN_LIBRARY), ("transports", TRANSPORT_LIBRARY)):
        if not (options.library_dir / kind / library).exists():
            raise ValueError(f"no {options.library_dir / kind / library}: is Janus installed?")
    directory.mkdir(mode=0o700, parents=True, exist_ok=True)
    directory.chmod(0o700)
    written = []
    for name, text in janus_config(options, directory).items():
        path = directory / name
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as file:
            file.write(text)
        path.chmod(0o600)
        written.append(path)
    folders: tuple[tuple[str, str | None], ...] = (
        ("plugins", PLUGIN_LIBRARY),
        ("transports", TRANSPORT_LIBRARY),
        ("events", None),
        ("loggers", None),
    )
    for kind, linked in folders:
        folder = directory / kind
        folder.mkdir(exist_ok=True)
        for old in folder.iterdir():
            if old.is_symlink() or old.is_file():
                old.unlink()
        if linked is not None:
            link = folder / linked
            link.symlink_to(options.library_dir / kind / linked)
            written.append(link)
    return written


def _list(items: Sequence[str]) -> str:
    return ",\n".join(f'\t\t"{item}"' for item in items)


def _is_word(text: str) -> bool:
    # One line, no quote or backslash: a value cannot end its string and start another.
    return bool(text) and all(33 <= ord(c) <= 126 and c not in '"\\' for c in text)
