"""The server's settings: one frozen dataclass, read from ``TAVKIT_*`` variables at the edges.

Nothing below the CLI and the app factory reads the environment; they build a
:class:`Settings` once (:meth:`Settings.from_env`) and pass it down. Every field has
a documented default, and every field that holds a secret (app keys, the TURN
secret, a database password) is masked in ``repr`` so settings can be logged.

Environment variables (all optional)::

    TAVKIT_HOST                  bind address                 127.0.0.1
    TAVKIT_PORT                  bind port (0: any free port) 8080
    TAVKIT_DATA_DIR              data directory               ./tavkit-data
    TAVKIT_DATABASE_URL          SQLAlchemy URL               sqlite in the data dir
    TAVKIT_DATABASE_SCHEMA       PostgreSQL schema            (the user's search_path)
    TAVKIT_REDIS_URL             redis:// URL: replicas share (none: one process's bus)
                                 events through Redis
    TAVKIT_REDIS_PREFIX          start of every Redis channel tavkit:
    TAVKIT_REPLICA_NAME          this replica's name (leases,  host-pid
                                 X-Tavkit-Replica header)
    TAVKIT_DRAIN_TIMEOUT         seconds SIGTERM waits for     10
                                 sockets to move (0: at once)
    TAVKIT_APPS                  ID:KEY[:pmk],...             (none)
    TAVKIT_APPS_FILE             JSON file of apps (below)    (none)
    TAVKIT_ADMIN_USER            admin userId                 administrator
    TAVKIT_ADMIN_KEY             key admin userSigs sign with (none: no admin API)
    TAVKIT_HEARTBEAT_INTERVAL    seconds                      5
    TAVKIT_HEARTBEAT_TIMEOUT     seconds                      15
    TAVKIT_MAX_MEMBERS           members per room             6 (mesh), 50 (sfu, at most 50)
    TAVKIT_MEDIA_MODE            mesh | sfu | auto (sfu.md)   mesh
    TAVKIT_SFU_ABOVE             auto: SFU above N members    2
    TAVKIT_JANUS_URL             Janus APIs, ws://host:port,… (none; sfu/auto need one)
    TAVKIT_JANUS_API_SECRET      the api_secret all Janus use (none)
    TAVKIT_CLOSE_GRACE           seconds an empty room stays  2
    TAVKIT_SWEEP_INTERVAL        seconds between sweeps       1
    TAVKIT_SOCKET_TOKEN_TTL      seconds                      60
    TAVKIT_RENEW_GRACE           seconds to renew credentials 30
    TAVKIT_ICE_SERVERS           JSON list, or URLs a,b       (none: no public STUN)
    TAVKIT_ICE_TRANSPORT_POLICY  all | relay                  all
    TAVKIT_ICE_ALLOWED_NETWORKS  CIDRs a,b                    (all)
    TAVKIT_TURN_SECRET           coturn use-auth-secret       (none)
    TAVKIT_TURN_TTL              seconds                      86400
    TAVKIT_PUBLIC_URL            base URL clients reach us at (derived from each request)
    TAVKIT_TRUSTED_PROXIES       CIDRs a,b whose X-Forwarded-* (none)
                                 headers are believed
    TAVKIT_TLS_CERT              PEM certificate: serve HTTPS  (none: http)
    TAVKIT_TLS_KEY               PEM key of the certificate   (none)
    TAVKIT_TLS_SELF_SIGNED       1/true: HTTPS, self-signed   false
    TAVKIT_CORS_ORIGINS          origins a,b (or *)           (none)
    TAVKIT_METRICS_TOKEN         bearer token /metrics needs  (none: /metrics is open)
    TAVKIT_DEMO                  1/true: demo mode            false
    TAVKIT_UNSAFE_DEMO           1/true: demo off loopback    false
    TAVKIT_LOG_FORWARD_URL       Elasticsearch/OpenSearch URL (none: logs stay in the database)
    TAVKIT_LOG_FORWARD_INDEX     index or data stream         tavkit-logs
    TAVKIT_LOG_FORWARD_FLAVOR    elasticsearch | opensearch   elasticsearch
    TAVKIT_RECORDING             off | auto | on-demand       off
    TAVKIT_RECORDING_MAX_FILE_SECONDS     seconds per file    14400 (4 h; 0: no limit)
    TAVKIT_RECORDING_MAX_SESSION_SECONDS  seconds per session 28800 (8 h; 0: no limit)
    TAVKIT_RECORDING_MIN_FREE    free-disk floor (2GiB, 500M) 2GiB (0: no floor)
    TAVKIT_RATE_LIMITS           1/true: REST token buckets   true
    TAVKIT_ADDRESS_RATE          requests/s per address       100 (0: no address bucket)
    TAVKIT_ADDRESS_BURST         requests at once per address 1000
    TAVKIT_LOG_DAILY_CAP         log items per app a UTC day  500000 (0: no cap)
    TAVKIT_SESSIONS_PER_MINUTE   sessions one user may open   10 (0: no cap)
    TAVKIT_RETENTION_DAYS        days data is kept            (none: kept forever)
    TAVKIT_RETENTION_INTERVAL    seconds between collections  3600
    TAVKIT_WEBHOOK_URL           the single app's webhook     (none; or PUT /v1/admin/webhooks)
                                 endpoint (http or https)
    TAVKIT_WEBHOOK_SECRET        its signing secret           (none)
    TAVKIT_WEBHOOK_TIMEOUT       seconds a delivery may take  10
    TAVKIT_WEBHOOK_RETRY_BASE    first retry delay, seconds   1 (doubles, with jitter)
    TAVKIT_WEBHOOK_RETRY_CAP     longest retry delay          300
    TAVKIT_WEBHOOK_GIVE_UP       seconds an event is retried  86400 (then it is dead)
    TAVKIT_WEBHOOK_POLL_INTERVAL seconds between journal polls 0.5

Each secret can also come from a file, which keeps it out of the environment (and so
out of ``/proc/<pid>/environ`` and crash reports) as Docker and Kubernetes secrets are
mounted: ``TAVKIT_ADMIN_KEY_FILE``, ``TAVKIT_TURN_SECRET_FILE``,
``TAVKIT_METRICS_TOKEN_FILE``, ``TAVKIT_WEBHOOK_SECRET_FILE``,
``TAVKIT_JANUS_API_SECRET_FILE`` name a file holding the secret (surrounding whitespace
dropped; :func:`read_secret_file`). Giving both the variable and its ``_FILE`` is refused.

An app entry ``ID:KEY:pmk`` makes privateMapKey mandatory on entry to that app's rooms.

The apps file (:func:`read_apps_file`) keeps keys out of the process list and the
environment: a JSON list of ``{"sdkAppId": 1400000001, "key": "...",
"requirePrivateMapKey": false, "adminKey": "..."}``; ``adminKey`` (optional) is that
app's own admin key and overrides ``TAVKIT_ADMIN_KEY``; ``recordingMaxFileSeconds`` and
``recordingMaxSessionSeconds`` (optional numbers, 0: no limit) override the server's
recording limits for that app; ``retentionDays`` (whole days, 0: keep forever) and
``logDailyCap`` (0: no cap) its retention and daily log cap; ``iceTransportPolicy``
(``"all"`` or ``"relay"``) whether its members may meet directly; ``mediaMode``
(``"mesh"``, ``"sfu"``, ``"auto"``) and ``sfuAbove`` (with ``auto``) its rooms' media
mode, which needs a Janus unless mesh. Apps from the file come after those of
``TAVKIT_APPS``.

The admin is not just a name: an admin request is the admin userId with a userSig
signed with the *admin* key (:meth:`Settings.admin_key_of`). The same userId signed
with the app key is an ordinary user; with no admin key there is no admin.
"""

from __future__ import annotations

import ipaddress
import json
import math
import os
import re
import socket
from collections.abc import Mapping
from dataclasses import dataclass, field, fields
from pathlib import Path
from types import MappingProxyType
from typing import Any, Final, Literal

__all__ = [
    "MEDIA_MODE_SETTINGS",
    "RECORDING_POLICIES",
    "AppConfig",
    "IceServerEntry",
    "MediaModeSetting",
    "Network",
    "Settings",
    "check_webhook_secret",
    "check_webhook_url",
    "parse_apps",
    "parse_ice_servers",
    "parse_networks",
    "parse_size",
    "read_apps_file",
    "read_secret_file",
]

Network = ipaddress.IPv4Network | ipaddress.IPv6Network
IceServerEntry = str | Mapping[str, Any]
"""One ``iceServers`` entry: a URL, or an ``RTCIceServer``-shaped mapping."""

U32_MAX: Final = 0xFFFF_FFFF
RECORDING_POLICIES: Final = ("off", "auto", "on-demand")
MESH_MAX_MEMBERS: Final = 6
"""A mesh room's size unless ``max_members`` says otherwise: each member uploads its
media once per other member, which a phone on mobile data stops keeping up with here."""
SFU_MAX_MEMBERS: Final = 50
"""An SFU room's size and its ceiling: the publishers a Janus VideoRoom room is made for
(:mod:`tavkit.server.sfu.bridge`). Each member uploads once whatever the room's size."""
"""The recording policies, in the order the CLI lists them."""
MediaModeSetting = Literal["mesh", "sfu", "auto"]
MEDIA_MODE_SETTINGS: Final = ("mesh", "sfu", "auto")
"""What a server or an app asks of its rooms: ``mesh``, ``sfu``, or ``auto`` (a mesh that
becomes an SFU room for good when it grows past ``sfu_above`` members, ``docs/sfu.md``)."""
SFU_ABOVE: Final = 2
"""An ``auto`` room's default threshold: a 1v1 is a mesh, the third member switches it."""
_KEY_RE: Final = re.compile(r"[0-9A-Za-z]{16,128}")
_TRUE: Final = frozenset({"1", "true", "yes", "on"})
_FALSE: Final = frozenset({"", "0", "false", "no", "off"})
_TOKEN_RE: Final = re.compile(r"[\x21-\x7e]{16,256}")
_URL_RE: Final = re.compile(r"[\x21-\x7e]{1,2048}")
_REDIS_SCHEMES: Final = ("redis://", "rediss://", "unix://")
_REDIS_PREFIX_RE: Final = re.compile(r"[\x21-\x7e]{1,64}")
_SECRET_FIELDS: Final = frozenset(
    {"turn_secret", "admin_key", "metrics_token", "webhook_secret", "janus_api_secret"}
)
_URL_FIELDS: Final = frozenset({"database_url", "log_forward_url", "redis_url", "webhook_url"})
SECRET_FILE_SETTINGS: Final = (
    "admin_key",
    "turn_secret",
    "metrics_token",
    "webhook_secret",
    "janus_api_secret",
)
"""The secrets that may come from a file (``TAVKIT_<NAME>_FILE``), as container secrets do."""
_ENV_NAMES: Final = {"janus_urls": "TAVKIT_JANUS_URL"}
"""Fields whose variable is not ``TAVKIT_`` + the field's name in capitals."""
_APP_LIMIT_KEYS: Final = ("recordingMaxFileSeconds", "recordingMaxSessionSeconds")
_APP_COUNT_KEYS: Final = {"retentionDays": "retention_days", "logDailyCap": "log_daily_cap"}
_APP_FILE_KEYS: Final = frozenset(
    {
        "sdkAppId",
        "key",
        "requirePrivateMapKey",
        "adminKey",
        "iceTransportPolicy",
        "mediaMode",
        "sfuAbove",
        *_APP_LIMIT_KEYS,
        *_APP_COUNT_KEYS,
    }
)
_SIZE_RE: Final = re.compile(r"(\d+(?:\.\d*)?)\s*([kmgt]?)(?:i?b)?", re.IGNORECASE)
GIB: Final = 1024**3


@dataclass(frozen=True)
class AppConfig:
    """One tenant: an sdkAppId, its secret key, and whether entry needs a privateMapKey."""

    sdk_app_id: int
    key: str = field(repr=False)
    require_private_map_key: bool = False
    admin_key: str | None = field(default=None, repr=False)
    """This app's admin key; None falls back to the server-wide ``Settings.admin_key``."""
    recording_max_file_seconds: float | None = None
    """This app's longest recording file (0: no limit); None: the server's."""
    recording_max_session_seconds: float | None = None
    """This app's longest recording of one session (0: no limit); None: the server's."""
    retention_days: int | None = None
    """Days this app's data is kept (0: forever, whatever the server's); None: the server's."""
    log_daily_cap: int | None = None
    """Log items this app may store a UTC day (0: no cap); None: the server's."""
    ice_transport_policy: Literal["all", "relay"] | None = None
    """``relay``: this app's members only ever meet over TURN (None: the server's)."""
    media_mode: MediaModeSetting | None = None
    """This app's rooms' media mode (None: the server's ``media_mode``)."""
    sfu_above: int | None = None
    """This app's ``auto`` threshold (None: the server's ``sfu_above``)."""

    def __post_init__(self) -> None:
        if isinstance(self.sdk_app_id, bool) or not 1 <= self.sdk_app_id <= U32_MAX:
            raise ValueError(f"sdkAppId must be an integer in 1..{U32_MAX}, not {self.sdk_app_id}")
        if not _KEY_RE.fullmatch(self.key):
            raise ValueError(f"the key of app {self.sdk_app_id} must be 16-128 letters or digits")
        if self.admin_key is not None:
            if not _KEY_RE.fullmatch(self.admin_key):
                raise ValueError(
                    f"the admin key of app {self.sdk_app_id} must be 16-128 letters or digits"
                )
            if self.admin_key == self.key:
                raise ValueError(f"the admin key of app {self.sdk_app_id} must differ from its key")
        for name in ("recording_max_file_seconds", "recording_max_session_seconds"):
            value = getattr(self, name)
            if value is not None and not _seconds_or_zero(value):
                raise ValueError(f"{name} of app {self.sdk_app_id} must be 0 or more seconds")
        if self.ice_transport_policy not in (None, "all", "relay"):
            raise ValueError(f"iceTransportPolicy of app {self.sdk_app_id} must be all or relay")
        if self.media_mode not in (None, *MEDIA_MODE_SETTINGS):
            raise ValueError(f"mediaMode of app {self.sdk_app_id} must be mesh, sfu or auto")
        if self.sfu_above is not None and not _threshold(self.sfu_above):
            most = SFU_MAX_MEMBERS - 1
            raise ValueError(
                f"sfuAbove of app {self.sdk_app_id} must be a whole number, 1 to {most}"
            )
        for name in ("retention_days", "log_daily_cap"):
            value = getattr(self, name)
            if value is not None and (
                isinstance(value, bool) or not isinstance(value, int) or value < 0
            ):
                raise ValueError(
                    f"{name} of app {self.sdk_app_id} must be a whole number, 0 or more"
                )


@dataclass(frozen=True, repr=False)
class Settings:
    """Everything ``tavkit serve`` and :func:`tavkit.server.create_app` can be told.

    Durations are seconds (floats allowed, so tests can run a heartbeat in 0.1 s).
    """

    # Network
    host: str = "127.0.0.1"
    """Bind address. Demo mode refuses anything but loopback unless ``unsafe_demo``."""
    port: int = 8080
    """Bind port; 0 picks a free one (``tavkit serve`` prints the bound URL)."""
    public_url: str | None = None
    """The base URL clients reach the server at, when a proxy hides it; None derives it
    from each request's Host header (and the mount path)."""
    trusted_proxies: tuple[Network, ...] = ()
    """Peers whose ``X-Forwarded-Proto`` / ``-For`` are believed (a reverse proxy's
    addresses, as CIDRs). Empty by default: behind no proxy, a client could claim any
    address (and dodge its rate-limit bucket) or make the server hand out ``wss://``."""
    tls_cert: Path | None = None
    """A PEM certificate (chain) to serve HTTPS with; needs ``tls_key``."""
    tls_key: Path | None = None
    """The PEM private key of ``tls_cert``."""
    tls_self_signed: bool = False
    """Serve HTTPS with a self-signed certificate for this host's names and addresses,
    made once and kept in the data dir (:mod:`tavkit.server.tls`): for trying a call
    between phones on a LAN, where browsers refuse the camera to plain http."""
    cors_origins: tuple[str, ...] = ()
    """Origins allowed to call the REST API from a browser page served elsewhere."""
    metrics_token: str | None = None
    """The bearer token a ``GET /metrics`` scrape must send (16-256 printable ASCII
    characters, no spaces); None leaves ``/metrics`` open to whoever reaches the server."""

    # Storage
    data_dir: Path = Path("./tavkit-data")
    """Where the SQLite database, the socket-token secret and the demo app live."""
    database_url: str | None = None
    """A SQLAlchemy async URL; None means ``sqlite+aiosqlite:///<data_dir>/tavkit.db``.
    ``postgresql+asyncpg://user@host/db`` works the same."""
    database_schema: str | None = None
    """PostgreSQL only: the schema tavkit's tables live in (created if missing)."""

    # Replicas
    redis_url: str | None = None
    """Redis (``redis://[:password@]host:6379``, ``rediss://``, ``unix://``) carrying the
    sessions' events between replicas (:mod:`tavkit.server.redis_bus`); None keeps them
    in this process, enough for one ``tavkit serve``. Replicas also need one database."""
    redis_prefix: str = "tavkit:"
    """What every Redis channel starts with, so deployments sharing a Redis keep apart."""
    replica_name: str = field(default_factory=lambda: f"{socket.gethostname()[:48]}-{os.getpid()}")
    """This process among the replicas: the holder named in a recording lease, the
    ``X-Tavkit-Replica`` response header (which replica a load balancer chose). Unique per
    running process; the default (host and process id) is."""
    drain_timeout: float = 10.0
    """On SIGTERM (``tavkit serve``), how long the replica waits for the sockets it told to
    move (close 1012) to be gone before it shuts down; meanwhile ``/healthz`` says
    ``draining`` and new enters and sockets are refused (:mod:`tavkit.server.drain`).
    0: no drain, every socket is closed at once."""

    # Apps and auth
    apps: tuple[AppConfig, ...] = ()
    """The tenants. Demo mode adds one when there is none."""
    admin_user: str = "administrator"
    """The userId whose userSig, signed with the admin key, may call the admin API."""
    admin_key: str | None = None
    """The server-wide admin key (an app's own ``admin_key`` overrides it). Admin requests
    carry a userSig of ``admin_user`` signed with it instead of the app key; None (and no
    app key of its own) means the app has no admin."""
    demo: bool = False
    """Serve the demo page and let it mint userSigs. For a developer's machine only."""
    unsafe_demo: bool = False
    """Allow demo mode on a non-loopback address (anyone reaching it can mint userSigs)."""

    # Rooms
    heartbeat_interval: float = 5.0
    """How often clients are told to send a heartbeat."""
    heartbeat_timeout: float = 15.0
    """A member silent this long is removed with reason ``timeout``."""
    max_members: int | None = None
    """Members per room; entering a full room is server 14000. None: the media mode's
    size (:data:`MESH_MAX_MEMBERS`, :data:`SFU_MAX_MEMBERS`); above 50 is refused in
    SFU mode (see :meth:`max_members_of`)."""
    close_grace: float = 2.0
    """An empty session stays open this long, so a quick re-enter keeps its UUID."""
    sweep_interval: float = 1.0
    """How often the sweeper looks for silent members and empty sessions."""
    socket_token_ttl: float = 60.0
    """How long the socket token returned by ``enter`` is good for a first connection."""
    renew_grace: float = 30.0
    """A member whose userSig or privateMapKey ended may still ``renew`` for this long;
    then it is removed with reason ``expired`` (``docs/protocol.md`` section 2)."""
    media_mode: MediaModeSetting = "mesh"
    """``sfu``: every room's media goes through Janus (``docs/sfu.md``); ``auto``: a room is
    a mesh until it has more than ``sfu_above`` members, then goes through Janus for the
    rest of its session. Both need ``janus_urls``. An app's own ``media_mode`` wins."""
    sfu_above: int = SFU_ABOVE
    """In ``auto``: a member entering a room of more than this many members (itself
    included) switches the session to the SFU."""
    janus_urls: tuple[str, ...] = ()
    """Every Janus's WebSocket API (``ws://127.0.0.1:8188``), which only tavkit talks to.
    A new session's room goes to the reachable one with the fewest members
    (:mod:`tavkit.server.sfu.placement`); ``TAVKIT_JANUS_URL`` lists them with commas."""
    janus_api_secret: str | None = None
    """The ``api_secret`` every Janus shares (``tavkit janus config`` writes it; give each
    instance's folder the same ``TAVKIT_JANUS_API_SECRET``); None if they have none."""

    # ICE
    ice_servers: tuple[IceServerEntry, ...] = ()
    """STUN/TURN servers handed to clients. Empty by default: no public STUN."""
    ice_transport_policy: Literal["all", "relay"] = "all"
    """``relay`` forces clients through TURN."""
    ice_allowed_networks: tuple[Network, ...] = ()
    """Candidates outside these networks are not relayed; empty allows every address."""
    turn_secret: str | None = None
    """coturn's ``static-auth-secret``: TURN entries without credentials get minted ones."""
    turn_ttl: float = 86400.0
    """Lifetime of minted TURN credentials."""

    # Logs
    log_forward_url: str | None = None
    """Where clients' logs are also sent (``http(s)://[user:pass@]host:9200``); None keeps
    them in the database only. See :mod:`tavkit.server.logs.forwarder`."""
    log_forward_index: str = "tavkit-logs"
    """The index (or data stream) forwarded documents go to."""
    log_forward_flavor: Literal["elasticsearch", "opensearch"] = "elasticsearch"
    """``opensearch`` sends plain NDJSON bulk requests (the official client refuses it)."""

    # Webhooks (tavkit.server.webhooks)
    webhook_url: str | None = None
    """The single app's webhook endpoint, set (with ``webhook_secret``) at each start;
    None leaves endpoints to ``PUT /v1/admin/webhooks``."""
    webhook_secret: str | None = None
    """The secret ``webhook_url``'s deliveries are signed with (16-256 printable characters)."""
    webhook_timeout: float = 10.0
    """Seconds one delivery may take (connect, send, answer) before it counts as failed."""
    webhook_retry_base: float = 1.0
    """The delay before the first retry of a failed event; each retry doubles it, with
    jitter (a random 50-100 %), up to ``webhook_retry_cap``."""
    webhook_retry_cap: float = 300.0
    """The longest delay between two attempts at one event."""
    webhook_give_up: float = 86400.0
    """How long an event is retried before it is dead (a dead letter) and the next goes."""
    webhook_poll_interval: float = 0.5
    """How often the dispatcher looks for new journal entries (the latency of a webhook)."""

    # Recording
    recording: Literal["off", "auto", "on-demand"] = "off"
    """The recording policy of apps without their own (``docs/protocol.md`` section 6):
    ``auto`` records every session, ``on-demand`` only between an admin's start and stop."""
    recording_max_file_seconds: float = 4 * 3600.0
    """A member's file is closed after this long and their recording goes on in a new
    file (``<userId>-<n+1>.mkv``; the closed row's ``stopReason`` is ``file-limit``).
    An app's ``recordingMaxFileSeconds`` overrides it; 0: no limit."""
    recording_max_session_seconds: float = 8 * 3600.0
    """A session's recorder stops after recording this long, finalising every file
    (``session-limit``); the call goes on. Counted from each start (``auto``: from the
    session's opening). An app's ``recordingMaxSessionSeconds`` overrides it; 0: no limit."""
    recording_min_free: int = 2 * GIB
    """Bytes that must stay free on the file system of ``<data_dir>/recordings``: below
    it every recording stops (files finalised, ``disk-floor``) and new ones are refused
    (server 14008, HTTP 507). 0: no floor."""

    # Limits and retention
    rate_limits: bool = True
    """Token buckets per user and per address on the REST routes that cost something
    (:mod:`tavkit.server.ratelimit`): past them, 429 with server 10004. Turn off only
    behind a gateway that limits, or for a load test from one machine."""
    address_rate: float = 100.0
    """Requests a second one client address may make to the limited routes (about 250
    members behind one NAT); 0 turns the per-address bucket off."""
    address_burst: float = 1000.0
    """Requests one client address may make at once to the limited routes."""
    log_daily_cap: int = 500_000
    """Log lines plus quality samples each app may store per UTC day (about nine hours
    of six-person calls); past it batches get 429 until midnight UTC. 0: no cap."""
    sessions_per_minute: int = 10
    """New sessions (rooms with no open session) one user may open a minute, in bursts of
    as many; past it ``enter`` answers 429 (:mod:`tavkit.server.ratelimit`). Entering a
    room that already has an open session never counts. 0: no cap."""
    retention_days: int | None = None
    """Delete in-call messages, client logs, quality samples and recordings older than
    this many days (:mod:`tavkit.server.retention`); None keeps everything."""
    retention_interval: float = 3600.0
    """With ``retention_days``, how often ``tavkit serve`` collects (seconds)."""

    def __post_init__(self) -> None:
        if not 0 <= self.port <= 65535:
            raise ValueError(f"port must be in 0..65535, not {self.port}")
        if (self.tls_cert is None) != (self.tls_key is None):
            raise ValueError("tls_cert and tls_key go together")
        if self.tls_self_signed and self.tls_cert is not None:
            raise ValueError("tls_self_signed and tls_cert are alternatives: pick one")
        if self.metrics_token is not None and not _TOKEN_RE.fullmatch(self.metrics_token):
            raise ValueError("metrics_token must be 16-256 printable ASCII characters, no spaces")
        for name in (
            "heartbeat_interval",
            "heartbeat_timeout",
            "sweep_interval",
            "socket_token_ttl",
            "turn_ttl",
            "renew_grace",
            "webhook_timeout",
            "webhook_retry_base",
            "webhook_retry_cap",
            "webhook_give_up",
            "webhook_poll_interval",
        ):
            value = getattr(self, name)
            if not (math.isfinite(value) and value > 0):
                raise ValueError(f"{name} must be a positive number of seconds, not {value}")
        if self.heartbeat_timeout <= self.heartbeat_interval:
            raise ValueError("heartbeat_timeout must be longer than heartbeat_interval")
        if not (math.isfinite(self.drain_timeout) and self.drain_timeout >= 0):
            raise ValueError(
                f"drain_timeout must be zero or more seconds, not {self.drain_timeout}"
            )
        if not (math.isfinite(self.close_grace) and self.close_grace >= 0):
            raise ValueError(f"close_grace must be zero or more seconds, not {self.close_grace}")
        self._check_media_modes()
        if self.ice_transport_policy not in ("all", "relay"):
            raise ValueError("ice_transport_policy must be 'all' or 'relay'")
        if self.log_forward_flavor not in ("elasticsearch", "opensearch"):
            raise ValueError("log_forward_flavor must be 'elasticsearch' or 'opensearch'")
        if self.recording not in RECORDING_POLICIES:
            raise ValueError("recording must be 'off', 'auto' or 'on-demand'")
        for name in ("recording_max_file_seconds", "recording_max_session_seconds"):
            if not _seconds_or_zero(getattr(self, name)):
                raise ValueError(f"{name} must be 0 or more seconds, not {getattr(self, name)}")
        if isinstance(self.recording_min_free, bool) or self.recording_min_free < 0:
            raise ValueError(
                f"recording_min_free must be 0 or more bytes, not {self.recording_min_free}"
            )
        self._check_limits()
        self._check_webhooks()
        ids = [app.sdk_app_id for app in self.apps]
        if len(ids) != len(set(ids)):
            raise ValueError("an sdkAppId is configured twice")
        if self.admin_key is not None:
            if not _KEY_RE.fullmatch(self.admin_key):
                raise ValueError("admin_key must be 16-128 letters or digits")
            for app in self.apps:
                # Equal keys would make every app-key userSig of the admin userId an admin.
                if app.admin_key is None and app.key == self.admin_key:
                    raise ValueError(f"admin_key must differ from the key of app {app.sdk_app_id}")
        if self.redis_url is not None and not self.redis_url.startswith(_REDIS_SCHEMES):
            raise ValueError("redis_url must start with redis://, rediss:// or unix://")
        if not _REDIS_PREFIX_RE.fullmatch(self.replica_name):
            raise ValueError("replica_name must be 1-64 printable ASCII characters, no spaces")
        if not _REDIS_PREFIX_RE.fullmatch(self.redis_prefix):
            raise ValueError("redis_prefix must be 1-64 printable ASCII characters, no spaces")
        if self.database_schema is not None and not re.fullmatch(
            r"[a-z_][a-z0-9_]{0,62}", self.database_schema
        ):
            raise ValueError("database_schema must be a lowercase SQL identifier")
        # Freeze nested mappings so a shared Settings cannot be changed through them.
        frozen = tuple(
            entry if isinstance(entry, str) else MappingProxyType(dict(entry))
            for entry in self.ice_servers
        )
        object.__setattr__(self, "ice_servers", frozen)

    def _check_media_modes(self) -> None:
        """The server's and the apps' media modes: every mode but mesh needs a Janus."""
        if self.media_mode not in MEDIA_MODE_SETTINGS:
            raise ValueError(f"media_mode must be mesh, sfu or auto, not {self.media_mode!r}")
        if not _threshold(self.sfu_above):
            most = SFU_MAX_MEMBERS - 1
            raise ValueError(f"sfu_above must be a whole number, 1 to {most}, not {self.sfu_above}")
        if self.max_members is not None and self.max_members < 1:
            raise ValueError(f"max_members must be at least 1, not {self.max_members}")
        if self.media_mode != "mesh" and (self.max_members or 0) > SFU_MAX_MEMBERS:
            raise ValueError(
                f"max_members {self.max_members} is more than an SFU room holds: at most"
                f" {SFU_MAX_MEMBERS} (the publishers of a Janus VideoRoom room)"
            )
        if len(set(self.janus_urls)) != len(self.janus_urls):
            raise ValueError("janus_urls: a Janus is named twice")
        for url in self.janus_urls:
            _check_janus_url(url)
        if self.media_mode != "mesh" and not self.janus_urls:
            raise ValueError(
                f"media mode {self.media_mode} needs a Janus: give --janus-url (TAVKIT_JANUS_URL)"
            )
        for app in self.apps:
            if app.media_mode not in (None, "mesh") and not self.janus_urls:
                raise ValueError(
                    f"app {app.sdk_app_id} asks for media mode {app.media_mode}, which needs a"
                    " Janus: give --janus-url (TAVKIT_JANUS_URL)"
                )

    def _check_limits(self) -> None:
        """The limits' and retention's fields (see :mod:`tavkit.server.ratelimit`)."""
        if not (math.isfinite(self.address_rate) and self.address_rate >= 0):
            raise ValueError(f"address_rate must be zero or more, not {self.address_rate}")
        if not (math.isfinite(self.address_burst) and self.address_burst >= 1):
            raise ValueError(f"address_burst must be at least 1, not {self.address_burst}")
        if isinstance(self.log_daily_cap, bool) or self.log_daily_cap < 0:
            raise ValueError(f"log_daily_cap must be zero or more, not {self.log_daily_cap}")
        if isinstance(self.sessions_per_minute, bool) or self.sessions_per_minute < 0:
            raise ValueError(
                f"sessions_per_minute must be zero or more, not {self.sessions_per_minute}"
            )
        if self.retention_days is not None and (
            isinstance(self.retention_days, bool) or self.retention_days < 1
        ):
            raise ValueError(f"retention_days must be at least 1, not {self.retention_days}")
        if not (math.isfinite(self.retention_interval) and self.retention_interval > 0):
            raise ValueError(
                f"retention_interval must be a positive number of seconds, "
                f"not {self.retention_interval}"
            )

    def _check_webhooks(self) -> None:
        """The webhook endpoint's fields (the delays are checked with the other seconds)."""
        if (self.webhook_url is None) != (self.webhook_secret is None):
            raise ValueError("webhook_url and webhook_secret go together")
        if self.webhook_url is not None:
            check_webhook_url(self.webhook_url)
            if len(self.apps) > 1:
                raise ValueError(
                    "webhook_url is for a single-app server; give each app its endpoint "
                    "with PUT /v1/admin/webhooks"
                )
        if self.webhook_secret is not None:
            check_webhook_secret(self.webhook_secret)

    @property
    def effective_database_url(self) -> str:
        """The database URL in use: the configured one, or SQLite in the data dir."""
        if self.database_url:
            return self.database_url
        return f"sqlite+aiosqlite:///{(self.data_dir / 'tavkit.db').resolve()}"

    def app(self, sdk_app_id: int) -> AppConfig | None:
        """The configured app with ``sdk_app_id``, or None."""
        for app in self.apps:
            if app.sdk_app_id == sdk_app_id:
                return app
        return None

    def admin_key_of(self, app: AppConfig) -> str | None:
        """The key ``app``'s admin userSigs are signed with: its own, else the server's."""
        return app.admin_key if app.admin_key is not None else self.admin_key

    def max_members_of(self, media_mode: MediaModeSetting) -> int:
        """How many members a room of ``media_mode`` holds: ``max_members``, else the
        mode's own size (6 in a mesh, 50 through the SFU or in ``auto``, which takes the
        SFU's room once it grows).

        A mesh has no ceiling but its default: a larger one (a test's nine-tile grid, a
        presence load test) is the operator's choice. The SFU's 50 is the Janus room's.
        """
        if self.max_members is not None:
            return self.max_members
        return MESH_MAX_MEMBERS if media_mode == "mesh" else SFU_MAX_MEMBERS

    def media_mode_of(self, sdk_app_id: int) -> MediaModeSetting:
        """The media mode of ``sdk_app_id``'s rooms: the app's own, else the server's."""
        app = self.app(sdk_app_id)
        if app is not None and app.media_mode is not None:
            return app.media_mode
        return self.media_mode

    def sfu_above_of(self, sdk_app_id: int) -> int:
        """``sdk_app_id``'s ``auto`` threshold: the app's own, else the server's."""
        app = self.app(sdk_app_id)
        if app is not None and app.sfu_above is not None:
            return app.sfu_above
        return self.sfu_above

    @property
    def uses_sfu(self) -> bool:
        """Whether any room may go through Janus (the server's mode or an app's)."""
        return self.media_mode != "mesh" or any(
            app.media_mode not in (None, "mesh") for app in self.apps
        )

    def recording_limits_of(self, sdk_app_id: int) -> tuple[float, float]:
        """The app's (longest file, longest session recording) in seconds; 0: no limit."""
        app = self.app(sdk_app_id)
        per_file, per_session = self.recording_max_file_seconds, self.recording_max_session_seconds
        if app is not None and app.recording_max_file_seconds is not None:
            per_file = app.recording_max_file_seconds
        if app is not None and app.recording_max_session_seconds is not None:
            per_session = app.recording_max_session_seconds
        return per_file, per_session

    def app_retention(self) -> dict[int, float]:
        """The apps with a retention of their own: sdkAppId -> days (0: kept forever)."""
        return {
            a.sdk_app_id: float(a.retention_days) for a in self.apps if a.retention_days is not None
        }

    @property
    def collects(self) -> bool:
        """Whether anything is ever collected: a server retention or an app's own."""
        return self.retention_days is not None or any(self.app_retention().values())

    def ice_transport_policy_of(self, sdk_app_id: int) -> Literal["all", "relay"]:
        """The app's ICE transport policy: its own, else the server's."""
        app = self.app(sdk_app_id)
        if app is not None and app.ice_transport_policy is not None:
            return app.ice_transport_policy
        return self.ice_transport_policy

    def log_daily_cap_of(self, sdk_app_id: int) -> int:
        """The app's daily log cap (0: none): its own, else the server's."""
        app = self.app(sdk_app_id)
        if app is not None and app.log_daily_cap is not None:
            return app.log_daily_cap
        return self.log_daily_cap

    def __repr__(self) -> str:
        parts = []
        for f in fields(self):
            value = getattr(self, f.name)
            if f.name in _SECRET_FIELDS and value is not None:
                shown = "'***'"
            elif f.name in _URL_FIELDS and value is not None:
                shown = repr(_mask_url(value))
            elif f.name == "janus_urls":
                shown = repr(tuple(_mask_url(url) for url in value))
            elif f.name == "ice_servers":
                shown = repr(tuple(_mask_ice(entry) for entry in value))
            else:
                shown = repr(value)
            parts.append(f"{f.name}={shown}")
        return f"Settings({', '.join(parts)})"

    @classmethod
    def from_env(cls, environ: Mapping[str, str], **overrides: Any) -> Settings:
        """Build settings from ``TAVKIT_*`` variables, then apply ``overrides``.

        Raises ``ValueError`` naming the variable when a value cannot be read.
        """
        values: dict[str, Any] = {}
        readers: dict[str, Any] = {
            "host": str,
            "port": int,
            "public_url": str,
            "cors_origins": _split,
            "trusted_proxies": parse_networks,
            "tls_cert": Path,
            "tls_key": Path,
            "tls_self_signed": _flag,
            "data_dir": Path,
            "database_url": str,
            "database_schema": str,
            "redis_url": str,
            "redis_prefix": str,
            "replica_name": str,
            "drain_timeout": float,
            "apps": parse_apps,
            "admin_user": str,
            "admin_key": str,
            "metrics_token": str,
            "demo": _flag,
            "unsafe_demo": _flag,
            "heartbeat_interval": float,
            "heartbeat_timeout": float,
            "max_members": int,
            "close_grace": float,
            "sweep_interval": float,
            "socket_token_ttl": float,
            "renew_grace": float,
            "media_mode": str,
            "sfu_above": int,
            "janus_urls": _split,
            "janus_api_secret": str,
            "ice_servers": parse_ice_servers,
            "ice_transport_policy": str,
            "ice_allowed_networks": parse_networks,
            "turn_secret": str,
            "turn_ttl": float,
            "log_forward_url": str,
            "log_forward_index": str,
            "log_forward_flavor": str,
            "recording": _recording_policy,
            "recording_max_file_seconds": float,
            "recording_max_session_seconds": float,
            "recording_min_free": parse_size,
            "rate_limits": _flag,
            "address_rate": float,
            "address_burst": float,
            "log_daily_cap": int,
            "sessions_per_minute": int,
            "retention_days": int,
            "retention_interval": float,
            "webhook_url": str,
            "webhook_secret": str,
            "webhook_timeout": float,
            "webhook_retry_base": float,
            "webhook_retry_cap": float,
            "webhook_give_up": float,
            "webhook_poll_interval": float,
        }
        for name, read in readers.items():
            variable = _ENV_NAMES.get(name, f"TAVKIT_{name.upper()}")
            raw = environ.get(variable)
            if raw is None or (raw.strip() == "" and name not in ("demo", "unsafe_demo")):
                continue
            try:
                values[name] = read(raw.strip())
            except ValueError as exc:
                raise ValueError(f"{variable}: {exc}") from None
        for name in SECRET_FILE_SETTINGS:
            variable = f"TAVKIT_{name.upper()}_FILE"
            secret_file = environ.get(variable, "").strip()
            if not secret_file:
                continue
            if name in values:
                raise ValueError(f"{variable}: give it or TAVKIT_{name.upper()}, not both")
            try:
                values[name] = read_secret_file(Path(secret_file))
            except ValueError as exc:
                raise ValueError(f"{variable}: {exc}") from None
        apps_file = environ.get("TAVKIT_APPS_FILE", "").strip()
        if apps_file and "apps" not in overrides:
            try:
                values["apps"] = values.get("apps", ()) + read_apps_file(Path(apps_file))
            except ValueError as exc:
                raise ValueError(f"TAVKIT_APPS_FILE: {exc}") from None
        values.update(overrides)
        return cls(**values)


def read_secret_file(path: Path) -> str:
    """The secret held in ``path``, surrounding whitespace (a final newline) dropped.

    Errors name the file, never its content: it is a secret.
    """
    try:
        secret = path.read_text(encoding="utf-8").strip()
    except OSError as exc:
        raise ValueError(f"cannot read {path}: {exc.strerror or exc}") from None
    except UnicodeDecodeError:
        raise ValueError(f"{path} is not a UTF-8 text file") from None
    if not secret:
        raise ValueError(f"{path} is empty")
    return secret


def parse_apps(text: str) -> tuple[AppConfig, ...]:
    """Read ``ID:KEY[:pmk],ID:KEY[:pmk]``; ``pmk`` makes privateMapKey mandatory."""
    apps = []
    for item in _split(text):
        parts = item.split(":")
        if len(parts) not in (2, 3) or (len(parts) == 3 and parts[2].lower() != "pmk"):
            raise ValueError(f"expected ID:KEY or ID:KEY:pmk, not {item.split(':')[0]}:...")
        try:
            sdk_app_id = int(parts[0])
        except ValueError:
            raise ValueError(f"sdkAppId {parts[0]!r} is not a number") from None
        apps.append(AppConfig(sdk_app_id, parts[1], require_private_map_key=len(parts) == 3))
    return tuple(apps)


def read_apps_file(path: Path) -> tuple[AppConfig, ...]:
    """Read the apps file (the module docstring's format); ``ValueError`` says what is wrong.

    The file holds secrets, so errors name the entry and the field, never a value.
    """
    try:
        raw: Any = json.loads(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise ValueError(f"cannot read {path}: {exc.strerror or exc}") from None
    except (UnicodeDecodeError, json.JSONDecodeError):
        raise ValueError(f"{path} is not a JSON file") from None
    if not isinstance(raw, list):
        raise ValueError(f"{path}: expected a JSON list of apps")
    apps = []
    for i, entry in enumerate(raw):
        where = f"{path}: app [{i}]"
        if not isinstance(entry, dict) or not {"sdkAppId", "key"} <= set(entry):
            raise ValueError(f"{where}: expected an object with sdkAppId and key")
        unknown = set(entry) - _APP_FILE_KEYS
        if unknown:
            raise ValueError(f"{where}: unknown field {sorted(unknown)[0]!r}")
        sdk_app_id, key = entry["sdkAppId"], entry["key"]
        pmk, admin_key = entry.get("requirePrivateMapKey", False), entry.get("adminKey")
        limits = [entry.get(name) for name in _APP_LIMIT_KEYS]
        if isinstance(sdk_app_id, bool) or not isinstance(sdk_app_id, int):
            raise ValueError(f"{where}: sdkAppId must be an integer")
        if not isinstance(key, str) or not isinstance(pmk, bool):
            raise ValueError(f"{where}: key must be a string, requirePrivateMapKey a boolean")
        if admin_key is not None and not isinstance(admin_key, str):
            raise ValueError(f"{where}: adminKey must be a string")
        for name, value in zip(_APP_LIMIT_KEYS, limits, strict=True):
            if value is not None and not _seconds_or_zero(value):
                raise ValueError(f"{where}: {name} must be a number of seconds, 0 or more")
        counts = {field: entry.get(name) for name, field in _APP_COUNT_KEYS.items()}
        for name, field_name in _APP_COUNT_KEYS.items():
            value = counts[field_name]
            if value is not None and (
                isinstance(value, bool) or not isinstance(value, int) or value < 0
            ):
                raise ValueError(f"{where}: {name} must be a whole number, 0 or more")
        policy = entry.get("iceTransportPolicy")
        if policy not in (None, "all", "relay"):
            raise ValueError(f'{where}: iceTransportPolicy must be "all" or "relay"')
        media_mode, sfu_above = entry.get("mediaMode"), entry.get("sfuAbove")
        if media_mode not in (None, *MEDIA_MODE_SETTINGS):
            raise ValueError(f'{where}: mediaMode must be "mesh", "sfu" or "auto"')
        if sfu_above is not None and not _threshold(sfu_above):
            raise ValueError(
                f"{where}: sfuAbove must be a whole number, 1 to {SFU_MAX_MEMBERS - 1}"
            )
        if sfu_above is not None and media_mode != "auto":
            raise ValueError(f'{where}: sfuAbove goes with "mediaMode": "auto"')
        try:
            apps.append(
                AppConfig(
                    sdk_app_id,
                    key,
                    pmk,
                    admin_key,
                    recording_max_file_seconds=limits[0],
                    recording_max_session_seconds=limits[1],
                    ice_transport_policy=policy,
                    media_mode=media_mode,
                    sfu_above=sfu_above,
                    **counts,
                )
            )
        except ValueError as exc:
            raise ValueError(f"{where}: {exc}") from None
    return tuple(apps)


def parse_ice_servers(text: str) -> tuple[IceServerEntry, ...]:
    """Read a JSON list (URLs or ``RTCIceServer`` objects) or comma-separated URLs."""
    if text.startswith("["):
        try:
            raw = json.loads(text)
        except json.JSONDecodeError as exc:
            raise ValueError(f"not valid JSON: {exc.msg}") from None
        entries: list[IceServerEntry] = []
        for item in raw:
            url_or_server = isinstance(item, str) or (
                isinstance(item, dict) and isinstance(item.get("urls"), str | list)
            )
            if not url_or_server:
                raise ValueError("each entry must be a URL or an object with 'urls'")
            entries.append(item)
        return tuple(entries)
    return tuple(_split(text))


def parse_networks(text: str) -> tuple[Network, ...]:
    """Read comma-separated CIDR networks (``10.0.0.0/8,::1/128``)."""
    return tuple(ipaddress.ip_network(item, strict=False) for item in _split(text))


def parse_size(text: str) -> int:
    """Read a byte count: ``2147483648``, ``2GiB``, ``500M``, ``1.5g`` (binary units)."""
    match = _SIZE_RE.fullmatch(text.strip())
    if match is None:
        raise ValueError(f"expected bytes such as 2GiB or 500M, not {text!r}")
    number, unit = float(match.group(1)), match.group(2).lower()
    return int(number * 1024 ** " kmgt".index(unit or " "))


def _seconds_or_zero(value: object) -> bool:
    return (
        isinstance(value, int | float)
        and not isinstance(value, bool)
        and math.isfinite(value)
        and value >= 0
    )


def _threshold(value: object) -> bool:
    """Whether ``value`` is an ``auto`` threshold: a whole number of members an SFU room
    can grow past."""
    return isinstance(value, int) and not isinstance(value, bool) and 1 <= value < SFU_MAX_MEMBERS


def _recording_policy(text: str) -> str:
    if text not in RECORDING_POLICIES:
        raise ValueError(f"expected off, auto or on-demand, not {text!r}")
    return text


def _split(text: str) -> tuple[str, ...]:
    return tuple(item.strip() for item in text.split(",") if item.strip())


def _check_janus_url(url: str) -> None:
    """Raise ``ValueError`` unless ``url`` is a Janus WebSocket API address (ws or wss).

    Janus also has an HTTP API (long-polling for its events); tavkit speaks only the
    WebSocket one, which pushes every event on the socket tavkit already holds, and
    ``tavkit janus config`` loads no other transport. An ``http://`` URL would pass
    startup and fail at the first room, so it is refused here, saying what to give.
    """
    from tavkit.server.sfu.placement import shown as shown_url  # no credentials in the error

    scheme, sep, rest = url.partition("://")
    if scheme.lower() in ("http", "https"):
        raise ValueError(
            f"janus_urls: {shown_url(url)} is Janus's HTTP API; tavkit speaks its WebSocket"
            " API: give ws://host:8188 (the port `tavkit janus config` opens)"
        )
    if not sep or scheme.lower() not in ("ws", "wss") or not rest.split("/", 1)[0]:
        raise ValueError(f"janus_urls: {shown_url(url)} is not a ws:// or wss:// URL with a host")


def check_webhook_url(url: str) -> None:
    """Raise ``ValueError`` unless ``url`` is an absolute http(s) URL with a host.

    Printable ASCII only, at most 2048 characters (an international host goes in its
    punycode form). The message never repeats the URL: it may carry credentials.
    """
    scheme, sep, rest = url.partition("://")
    host = rest.split("/", 1)[0].rpartition("@")[2]
    if not _URL_RE.fullmatch(url) or not sep or scheme.lower() not in ("http", "https") or not host:
        raise ValueError("the webhook URL must be an absolute http:// or https:// URL")


def check_webhook_secret(secret: str) -> None:
    """Raise ``ValueError`` unless ``secret`` is 16-256 printable ASCII characters."""
    if not _TOKEN_RE.fullmatch(secret):
        raise ValueError("the webhook secret must be 16-256 printable ASCII characters, no spaces")


def _flag(text: str) -> bool:
    lowered = text.lower()
    if lowered in _TRUE:
        return True
    if lowered in _FALSE:
        return False
    raise ValueError(f"expected true or false, not {text!r}")


def _mask_url(url: str) -> str:
    """The URL with any password replaced by ``***`` (Redis URLs often have no user)."""
    return re.sub(r"(://[^:/@]*:)[^@/]*@", r"\1***@", url)


def _mask_ice(entry: IceServerEntry) -> IceServerEntry:
    if isinstance(entry, str) or "credential" not in entry:
        return entry
    return {**entry, "credential": "***"}
