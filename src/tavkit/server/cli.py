"""``tavkit serve`` and ``tavkit db upgrade``: the server's commands.

Every option is also a ``TAVKIT_*`` environment variable (see
:mod:`tavkit.server.settings`); an option given on the command line wins. The
server binds its socket before uvicorn starts, so ``--port 0`` works and the
printed URL is the one actually bound, printed once the app has started.

Secrets given as options (``--app ID:KEY``, ``--admin-key``, ``--turn-secret``,
``--metrics-token``, ``--webhook-secret``) are visible to every user of the machine in
the process list, so ``serve`` warns when it sees one; ``--apps-file`` and the environment
keep them out of it. ``--app`` and ``--apps-file`` on the command line replace ``TAVKIT_APPS`` and
``TAVKIT_APPS_FILE``.
On SIGTERM ``serve`` drains (:mod:`tavkit.server.drain`): ``/healthz`` says draining,
new enters and sockets are refused, every socket is told to move (close 1012), and
the process stops once they are gone or ``--drain-timeout`` has passed. A second
SIGTERM, or Ctrl-C, stops at once.
The server runs under umask 077: what it writes in the data directory (the token
secret, the demo keys, SQLite, recordings) is for its own user only.
"""

from __future__ import annotations

import asyncio
import gc
import json
import os
import signal
import socket
import time
from collections.abc import Callable
from pathlib import Path
from types import FrameType
from typing import TYPE_CHECKING, Annotated, Any, Final

import typer

from tavkit.errors import TAvKitError
from tavkit.protocol import MAX_FRAME_BYTES
from tavkit.server.cluster import cluster
from tavkit.server.logformat import configure_logging
from tavkit.server.settings import (
    Settings,
    parse_apps,
    parse_ice_servers,
    parse_networks,
    parse_size,
    read_apps_file,
    read_secret_file,
)

if TYPE_CHECKING:
    import uvicorn

    from tavkit.server.retention import GcReport

__all__ = ["db_app", "event_loop_factory", "server_app", "turn_app", "uvicorn_config"]

_START_TIMEOUT: Final = 180.0

server_app = typer.Typer(add_completion=False)
db_app = typer.Typer(help="Manage the server's database.", no_args_is_help=True)
server_app.add_typer(db_app, name="db")
turn_app = typer.Typer(help="coturn, the TURN relay the clients are sent to.", no_args_is_help=True)


def _env(name: str) -> str:
    # Parentheses, not brackets: Typer renders help as rich markup.
    return f"(env TAVKIT_{name})"


@server_app.command()
def serve(
    # Network
    host: Annotated[
        str | None, typer.Option(help=f"Bind address (default 127.0.0.1). {_env('HOST')}")
    ] = None,
    port: Annotated[
        int | None,
        typer.Option(help=f"Bind port (default 8080; 0 picks a free one). {_env('PORT')}"),
    ] = None,
    public_url: Annotated[
        str | None,
        typer.Option(help=f"Base URL clients reach us at, behind a proxy. {_env('PUBLIC_URL')}"),
    ] = None,
    tls_cert: Annotated[
        Path | None,
        typer.Option(help=f"PEM certificate (chain): serve HTTPS. {_env('TLS_CERT')}"),
    ] = None,
    tls_key: Annotated[
        Path | None, typer.Option(help=f"PEM private key of --tls-cert. {_env('TLS_KEY')}")
    ] = None,
    tls_self_signed: Annotated[
        bool | None,
        typer.Option(
            "--tls-self-signed",
            help="Serve HTTPS with a certificate made for this host's names and addresses, "
            "kept in the data dir (to try calls between devices on a LAN). "
            f"{_env('TLS_SELF_SIGNED')}",
        ),
    ] = None,
    trusted_proxies: Annotated[
        str | None,
        typer.Option(
            help="CIDRs (a,b) of reverse proxies whose X-Forwarded-Proto/-For are believed "
            f"(default none). {_env('TRUSTED_PROXIES')}"
        ),
    ] = None,
    cors_origin: Annotated[
        list[str] | None,
        typer.Option(help=f"Origin allowed to call the API (repeatable). {_env('CORS_ORIGINS')}"),
    ] = None,
    metrics_token: Annotated[
        str | None,
        typer.Option(
            help="Bearer token GET /metrics requires (default none: open; prefer the "
            f"environment: options show in the process list). {_env('METRICS_TOKEN')}"
        ),
    ] = None,
    # Storage
    data_dir: Annotated[
        Path | None,
        typer.Option(help=f"Data directory (default ./tavkit-data). {_env('DATA_DIR')}"),
    ] = None,
    database_url: Annotated[
        str | None,
        typer.Option(
            help="SQLAlchemy URL (default SQLite in the data dir); postgresql+asyncpg://... "
            f"works too. {_env('DATABASE_URL')}"
        ),
    ] = None,
    database_schema: Annotated[
        str | None, typer.Option(help=f"PostgreSQL schema. {_env('DATABASE_SCHEMA')}")
    ] = None,
    redis_url: Annotated[
        str | None,
        typer.Option(
            help="Redis URL (redis://host:6379): replicas on one database share the "
            "sessions' events through it (default none: one process). Channels start "
            f"with TAVKIT_REDIS_PREFIX (default tavkit:). {_env('REDIS_URL')}"
        ),
    ] = None,
    replica_name: Annotated[
        str | None,
        typer.Option(
            help="This replica's name in recording leases and the X-Tavkit-Replica header "
            f"(default host-pid). {_env('REPLICA_NAME')}"
        ),
    ] = None,
    drain_timeout: Annotated[
        float | None,
        typer.Option(
            min=0,
            help="On SIGTERM, seconds to wait for the sockets told to move (close 1012) "
            "to reconnect elsewhere before stopping (default 10; 0: close them at once). "
            f"{_env('DRAIN_TIMEOUT')}",
        ),
    ] = None,
    # Apps and auth
    app: Annotated[
        list[str] | None,
        typer.Option(
            "--app",
            help="An app as ID:KEY; append :pmk to require a privateMapKey on entry "
            "(repeatable; prefer --apps-file or the environment: options show in the "
            f"process list). {_env('APPS')}, comma-separated",
        ),
    ] = None,
    apps_file: Annotated[
        Path | None,
        typer.Option(
            help="A JSON file listing the apps, with their keys (see the README). "
            f"{_env('APPS_FILE')}"
        ),
    ] = None,
    admin_user: Annotated[
        str | None,
        typer.Option(help=f"Admin userId (default administrator). {_env('ADMIN_USER')}"),
    ] = None,
    admin_key: Annotated[
        str | None,
        typer.Option(
            help="The key admin userSigs are signed with (none: no admin API; prefer the "
            f"environment: options show in the process list). {_env('ADMIN_KEY')}"
        ),
    ] = None,
    demo: Annotated[
        bool | None,
        typer.Option(
            "--demo/--no-demo",
            help=f"Serve the demo page, which may mint userSigs (loopback only). {_env('DEMO')}",
        ),
    ] = None,
    unsafe_demo: Annotated[
        bool | None,
        typer.Option(
            "--unsafe-demo/--no-unsafe-demo",
            help=f"Allow demo mode on a non-loopback host. {_env('UNSAFE_DEMO')}",
        ),
    ] = None,
    # Rooms
    heartbeat_interval: Annotated[
        float | None, typer.Option(help=f"Seconds (default 5). {_env('HEARTBEAT_INTERVAL')}")
    ] = None,
    heartbeat_timeout: Annotated[
        float | None, typer.Option(help=f"Seconds (default 15). {_env('HEARTBEAT_TIMEOUT')}")
    ] = None,
    max_members: Annotated[
        int | None,
        typer.Option(
            help="Members per room (default 6 in a mesh, 50 in SFU mode, at most 50 there)."
            f" {_env('MAX_MEMBERS')}"
        ),
    ] = None,
    close_grace: Annotated[
        float | None,
        typer.Option(help=f"Seconds an empty room stays open (default 2). {_env('CLOSE_GRACE')}"),
    ] = None,
    # Media (docs/sfu.md)
    media_mode: Annotated[
        str | None,
        typer.Option(
            help="mesh (members send to each other), sfu (through Janus; needs "
            "--janus-url) or auto (a mesh until a room has more than --sfu-above members, "
            f"then through Janus for the rest of its session). Default mesh. {_env('MEDIA_MODE')}"
        ),
    ] = None,
    sfu_above: Annotated[
        int | None,
        typer.Option(
            help="In auto: a room switches to the SFU when it has more than this many "
            f"members (default 2: the third member switches it). {_env('SFU_ABOVE')}"
        ),
    ] = None,
    janus_url: Annotated[
        list[str] | None,
        typer.Option(
            help="A Janus's WebSocket API, ws://host:port; repeat it for several (a new "
            "room goes to the reachable one with the fewest members, and a dying one's "
            f"members move to another). {_env('JANUS_URL')} (commas between URLs)"
        ),
    ] = None,
    janus_secret: Annotated[
        str | None,
        typer.Option(help=f"The api_secret every Janus shares. {_env('JANUS_API_SECRET')}"),
    ] = None,
    janus_secret_file: Annotated[
        Path | None,
        typer.Option(
            help="A file holding that api_secret (`tavkit janus config` writes DIR/api_secret),"
            f" kept out of the process list. {_env('JANUS_API_SECRET_FILE')}"
        ),
    ] = None,
    sweep_interval: Annotated[
        float | None, typer.Option(help=f"Seconds (default 1). {_env('SWEEP_INTERVAL')}")
    ] = None,
    renew_grace: Annotated[
        float | None,
        typer.Option(
            help="Seconds a member whose userSig or privateMapKey ended may still renew "
            f"before it is removed as expired (default 30). {_env('RENEW_GRACE')}"
        ),
    ] = None,
    # ICE
    ice_servers: Annotated[
        str | None,
        typer.Option(
            help=f"JSON list or comma-separated URLs (default none). {_env('ICE_SERVERS')}"
        ),
    ] = None,
    ice_allowed_networks: Annotated[
        str | None,
        typer.Option(
            help=f"CIDRs whose candidates are relayed (default all). {_env('ICE_ALLOWED_NETWORKS')}"
        ),
    ] = None,
    turn_secret: Annotated[
        str | None,
        typer.Option(
            help="coturn's static-auth-secret, to mint TURN credentials (prefer the "
            f"environment: options show in the process list). {_env('TURN_SECRET')}"
        ),
    ] = None,
    # Logging
    log_level: Annotated[str, typer.Option(help="debug, info, warning or error.")] = "info",
    log_format: Annotated[
        str,
        typer.Option(
            envvar="TAVKIT_LOG_FORMAT",
            help="text, or json: one JSON object per line with session and user fields.",
        ),
    ] = "text",
    log_forward_url: Annotated[
        str | None,
        typer.Option(
            help="Also send clients' logs to this Elasticsearch/OpenSearch URL. "
            f"{_env('LOG_FORWARD_URL')}"
        ),
    ] = None,
    # Webhooks
    webhook_url: Annotated[
        str | None,
        typer.Option(
            help="Deliver the app's journal events (signed) to this http(s) URL; a single-app "
            f"server only (otherwise PUT /v1/admin/webhooks). {_env('WEBHOOK_URL')}"
        ),
    ] = None,
    webhook_secret: Annotated[
        str | None,
        typer.Option(
            help="The secret --webhook-url's deliveries are signed with (prefer the "
            f"environment: options show in the process list). {_env('WEBHOOK_SECRET')}"
        ),
    ] = None,
    # Recording
    recording: Annotated[
        str | None,
        typer.Option(
            help="Recording policy of apps without their own: off, auto (every session) "
            f"or on-demand (admin start/stop); default off. {_env('RECORDING')}"
        ),
    ] = None,
    recording_max_file_seconds: Annotated[
        float | None,
        typer.Option(
            min=0,
            help="Close a recording file after this many seconds and go on in a new one "
            f"(default 14400, 4 h; 0: no limit). {_env('RECORDING_MAX_FILE_SECONDS')}",
        ),
    ] = None,
    recording_max_session_seconds: Annotated[
        float | None,
        typer.Option(
            min=0,
            help="Stop recording a session after this many seconds (default 28800, 8 h; "
            f"0: no limit). {_env('RECORDING_MAX_SESSION_SECONDS')}",
        ),
    ] = None,
    recording_min_free: Annotated[
        str | None,
        typer.Option(
            help="Free disk space recordings must leave, e.g. 2GiB or 500M: below it they "
            "stop and new ones are refused (default 2GiB; 0: no floor). "
            f"{_env('RECORDING_MIN_FREE')}"
        ),
    ] = None,
    # Limits and retention
    retention_days: Annotated[
        int | None,
        typer.Option(
            min=1,
            help="Delete in-call messages, client logs, quality samples and recordings "
            "older than N days, hourly (default: keep everything; see tavkit gc). "
            f"{_env('RETENTION_DAYS')}",
        ),
    ] = None,
    log_daily_cap: Annotated[
        int | None,
        typer.Option(
            min=0,
            help="Log items each app may store per UTC day (default 500000; 0: no cap). "
            f"{_env('LOG_DAILY_CAP')}",
        ),
    ] = None,
    rate_limits: Annotated[
        bool | None,
        typer.Option(
            "--rate-limits/--no-rate-limits",
            help="Token buckets per user and per address on the REST API (default on). "
            f"{_env('RATE_LIMITS')}",
        ),
    ] = None,
    address_rate: Annotated[
        float | None,
        typer.Option(
            min=0,
            help="Requests a second per client address to the limited routes (default 100; "
            f"0: no address bucket). {_env('ADDRESS_RATE')}",
        ),
    ] = None,
) -> None:
    """Run the room server (REST v1, signaling socket, web component)."""
    given: dict[str, Any] = {
        "host": host,
        "port": port,
        "public_url": public_url,
        "cors_origins": tuple(cors_origin) if cors_origin else None,
        "tls_cert": tls_cert,
        "tls_key": tls_key,
        "tls_self_signed": tls_self_signed,
        "metrics_token": metrics_token,
        "data_dir": data_dir,
        "database_url": database_url,
        "database_schema": database_schema,
        "redis_url": redis_url,
        "replica_name": replica_name,
        "drain_timeout": drain_timeout,
        "admin_user": admin_user,
        "admin_key": admin_key,
        "demo": demo,
        "unsafe_demo": unsafe_demo,
        "heartbeat_interval": heartbeat_interval,
        "heartbeat_timeout": heartbeat_timeout,
        "max_members": max_members,
        "close_grace": close_grace,
        "media_mode": media_mode,
        "sfu_above": sfu_above,
        "janus_urls": tuple(janus_url) if janus_url else None,
        "janus_api_secret": janus_secret,
        "sweep_interval": sweep_interval,
        "renew_grace": renew_grace,
        "turn_secret": turn_secret,
        "log_forward_url": log_forward_url,
        "webhook_url": webhook_url,
        "webhook_secret": webhook_secret,
        "recording": recording,
        "recording_max_file_seconds": recording_max_file_seconds,
        "recording_max_session_seconds": recording_max_session_seconds,
        "retention_days": retention_days,
        "log_daily_cap": log_daily_cap,
        "rate_limits": rate_limits,
        "address_rate": address_rate,
    }
    from tavkit.server.app import prepare  # FastAPI & co. load only when serving

    for option, value in (
        ("--app", app),
        ("--admin-key", admin_key),
        ("--turn-secret", turn_secret),
        ("--metrics-token", metrics_token),
        ("--webhook-secret", webhook_secret),
        ("--janus-secret", janus_secret),
    ):
        if value:
            typer.echo(
                f"tavkit serve: warning: {option} shows its secret in the process list;"
                " prefer the environment or --apps-file",
                err=True,
            )
    try:
        if app or apps_file is not None:
            from_cli = parse_apps(",".join(app)) if app else ()
            given["apps"] = from_cli + (read_apps_file(apps_file) if apps_file else ())
        if janus_secret_file is not None:
            if janus_secret:
                raise ValueError("give --janus-secret or --janus-secret-file, not both")
            try:
                given["janus_api_secret"] = read_secret_file(janus_secret_file)
            except ValueError as exc:
                raise ValueError(f"--janus-secret-file: {exc}") from None
        if ice_servers is not None:
            given["ice_servers"] = parse_ice_servers(ice_servers)
        if trusted_proxies is not None:
            given["trusted_proxies"] = parse_networks(trusted_proxies)
        if ice_allowed_networks is not None:
            given["ice_allowed_networks"] = parse_networks(ice_allowed_networks)
        if recording_min_free is not None:
            try:
                given["recording_min_free"] = parse_size(recording_min_free)
            except ValueError as exc:
                raise ValueError(f"--recording-min-free: {exc}") from None
        overrides = {name: value for name, value in given.items() if value is not None}
        checked = Settings.from_env(os.environ, **overrides)
        os.umask(0o077)  # before prepare(), which may create the data dir and demo keys
        settings = prepare(checked)
    except ValueError as exc:
        typer.echo(f"tavkit serve: {exc}", err=True)
        raise typer.Exit(2) from None
    if log_format not in ("text", "json"):
        typer.echo("tavkit serve: --log-format must be text or json", err=True)
        raise typer.Exit(2)
    configure_logging(log_level, "json" if log_format == "json" else "text")
    with asyncio.Runner(loop_factory=event_loop_factory()) as runner:
        code = runner.run(_serve(settings, log_level))
    raise typer.Exit(code)


def event_loop_factory() -> Callable[[], asyncio.AbstractEventLoop] | None:
    """uvloop's event loop when it is installed (``uvicorn[standard]`` brings it), else None.

    Every socket frame passes through the event loop several times (read, bus, write),
    and uvloop does that work in C: it is the cheapest capacity the server can get.
    """
    try:
        import uvloop
    except ImportError:
        return None
    return uvloop.new_event_loop


def uvicorn_config(
    app: Any, log_level: str, cert: str | None = None, key: str | None = None
) -> uvicorn.Config:
    """How ``tavkit serve`` runs ``app`` under uvicorn (the benchmarks' baselines run on
    the same, so that a ratio measures tavkit's work rather than a different stack)."""
    import uvicorn

    from tavkit.server.wsprotocol import LeanWebSocketProtocol

    # log_config=None: uvicorn's loggers propagate to ours (configure_logging).
    return uvicorn.Config(
        app,
        log_level=log_level,
        lifespan="on",
        log_config=None,
        # uvicorn would otherwise buffer frames up to 16 MiB before the socket sees them.
        ws_max_size=MAX_FRAME_BYTES,
        # Liveness is the protocol's own `ping` frame and the heartbeat timeout: uvicorn's
        # keepalive pings would add a frame each way per socket every 20 s, and a timer.
        ws_ping_interval=None,
        # Frames are small JSON; per-message deflate would keep a zlib compressor and
        # decompressor per socket (tens of KiB each) and compress every frame.
        ws_per_message_deflate=False,
        # uvicorn's websockets-sansio protocol without what a held socket never uses.
        ws=LeanWebSocketProtocol,
        # The app reads X-Forwarded-* itself, from --trusted-proxies only
        # (tavkit.server.proxies); uvicorn's own reader would trust 127.0.0.1.
        proxy_headers=False,
        ssl_certfile=cert,
        ssl_keyfile=key,
    )


async def _serve(settings: Settings, log_level: str) -> int:
    """Serve until a signal; 1 if the app failed to start."""
    import uvicorn

    from tavkit.server.app import create_app, drain_app
    from tavkit.server.listen import listening_socket

    class _Server(uvicorn.Server):
        """uvicorn's server with an event set once the app has started and listens, and
        a drain (:mod:`tavkit.server.drain`) between SIGTERM and uvicorn's shutdown.

        The signal handler only notes the request; the next tick of uvicorn's main loop
        starts the drain, which asks for the shutdown when it is over. A second SIGTERM,
        or SIGINT (Ctrl-C), shuts down at once.
        """

        def __init__(self, config: uvicorn.Config) -> None:
            super().__init__(config)
            self.ready = asyncio.Event()
            self.drain_requested = False
            self.draining: asyncio.Task[None] | None = None

        async def startup(self, sockets: list[socket.socket] | None = None) -> None:
            await super().startup(sockets=sockets)
            if self.started:
                self.ready.set()

        def handle_exit(self, sig: int, frame: FrameType | None) -> None:
            drains = settings.drain_timeout > 0 and self.started and not self.should_exit
            if sig == signal.SIGTERM and drains and not self.drain_requested:
                self.drain_requested = True
                return
            super().handle_exit(sig, frame)

        async def on_tick(self, counter: int) -> bool:
            if self.drain_requested and self.draining is None:
                self.draining = asyncio.create_task(self._drain(), name="tavkit-drain")
            return await super().on_tick(counter)

        async def _drain(self) -> None:
            try:
                await drain_app(app, settings.drain_timeout)
            finally:
                self.should_exit = True

    try:
        sock = listening_socket(settings.host, settings.port)
    except OSError as exc:
        typer.echo(f"tavkit serve: cannot bind {settings.host}:{settings.port}: {exc}", err=True)
        return 1
    port = sock.getsockname()[1]
    cert, key = _tls_files(settings)
    app = create_app(settings)
    config = uvicorn_config(app, log_level, cert, key)
    server = _Server(config)
    task = asyncio.create_task(server.serve(sockets=[sock]))
    ready = asyncio.create_task(server.ready.wait())
    await asyncio.wait({task, ready}, timeout=_START_TIMEOUT, return_when=asyncio.FIRST_COMPLETED)
    ready.cancel()
    if server.started:
        # What exists once the app has started (modules, the app, its services) lives as
        # long as the process: keep it out of the collector's full passes, which would
        # otherwise walk it all and stall the event loop for every socket at once.
        gc.freeze()
        host = f"[{settings.host}]" if sock.family == socket.AF_INET6 else settings.host
        url = f"{'https' if cert else 'http'}://{host}:{port}"
        typer.echo(f"tavkit serving on {url}")
        for other in _lan_urls(settings.host, port, "https" if cert else "http"):
            typer.echo(f"  also reachable as {other}")
        if settings.demo:
            typer.echo(f"demo: open {url}/ (sdkAppId {settings.apps[0].sdk_app_id})")
            typer.echo(_admin_hint(settings, url))
    await task
    sock.close()
    return 0 if server.started else 1


def _lan_urls(host: str, port: int, scheme: str) -> list[str]:
    """Bound to every address (0.0.0.0, ::): the URLs other devices can type instead."""
    if host.strip("[]") not in ("0.0.0.0", "::"):
        return []
    from tavkit.server.tls import host_names

    _, addresses = host_names(host)
    shown = sorted((a for a in addresses if not a.is_loopback), key=lambda a: (a.version, str(a)))
    return [f"{scheme}://{f'[{a}]' if a.version == 6 else a}:{port}/" for a in shown]


def _tls_files(settings: Settings) -> tuple[str | None, str | None]:
    """The certificate and key uvicorn serves HTTPS with; (None, None) for plain http."""
    if settings.tls_cert is not None and settings.tls_key is not None:
        return str(settings.tls_cert), str(settings.tls_key)
    if settings.tls_self_signed:
        from tavkit.server.tls import self_signed

        made = self_signed(settings.data_dir, settings.host)
        return str(made.cert), str(made.key)
    return None, None


def _admin_hint(settings: Settings, url: str) -> str:
    """How to sign in to the dashboard: which key file, which command (no secret shown)."""
    from tavkit.server.app import DEMO_ADMIN_KEY_FILE

    app = settings.apps[0]
    path = settings.data_dir / DEMO_ADMIN_KEY_FILE
    demo_key = path.read_text().strip() if path.is_file() else None
    if app.admin_key is None and settings.admin_key is not None and settings.admin_key == demo_key:
        source = f"$(cat {path})"
    else:
        source = "<your admin key>"
    return (
        f"demo: dashboard at {url}/dashboard; its admin userSig: TAVKIT_ADMIN_KEY={source}"
        f" tavkit usersig admin --sdk-app-id {app.sdk_app_id}"
    )


server_app.command("cluster")(cluster)  # replicas behind HAProxy (tavkit.server.cluster)


@db_app.command("upgrade")
def db_upgrade(
    data_dir: Annotated[
        Path | None, typer.Option(help=f"Data directory. {_env('DATA_DIR')}")
    ] = None,
    database_url: Annotated[
        str | None, typer.Option(help=f"SQLAlchemy URL. {_env('DATABASE_URL')}")
    ] = None,
    database_schema: Annotated[
        str | None, typer.Option(help=f"PostgreSQL schema. {_env('DATABASE_SCHEMA')}")
    ] = None,
) -> None:
    """Apply the database migrations (the server also does this when it starts)."""
    from tavkit.server.store.db import upgrade

    given = {"data_dir": data_dir, "database_url": database_url, "database_schema": database_schema}
    try:
        settings = Settings.from_env(
            os.environ, **{name: value for name, value in given.items() if value is not None}
        )
        asyncio.run(upgrade(settings.effective_database_url, schema=settings.database_schema))
    except (ValueError, TAvKitError) as exc:
        typer.echo(f"tavkit db upgrade: {exc}", err=True)
        raise typer.Exit(1) from None
    typer.echo("database is at the newest revision")


@server_app.command("gc")
def collect_garbage(
    retention_days: Annotated[
        int | None,
        typer.Option(min=1, help=f"Delete what is older than N days. {_env('RETENTION_DAYS')}"),
    ] = None,
    dry_run: Annotated[
        bool, typer.Option("--dry-run", help="List what would go; delete nothing.")
    ] = False,
    as_json: Annotated[
        bool, typer.Option("--json", help="Print the report as one JSON object.")
    ] = False,
    data_dir: Annotated[
        Path | None, typer.Option(help=f"Data directory. {_env('DATA_DIR')}")
    ] = None,
    database_url: Annotated[
        str | None, typer.Option(help=f"SQLAlchemy URL. {_env('DATABASE_URL')}")
    ] = None,
    database_schema: Annotated[
        str | None, typer.Option(help=f"PostgreSQL schema. {_env('DATABASE_SCHEMA')}")
    ] = None,
    apps_file: Annotated[
        Path | None,
        typer.Option(
            help="The server's apps file: apps with their own retentionDays keep to it. "
            f"{_env('APPS_FILE')}"
        ),
    ] = None,
) -> None:
    """Delete in-call messages, client logs, quality samples and recordings past the retention.

    Messages and recordings go with their session, by its close time (an open session
    is never touched); log lines and quality samples by the time each was received.
    Safe while the server runs: it deletes in small batches.
    """
    from tavkit.server.retention import collect
    from tavkit.server.store.db import Store

    given: dict[str, Any] = {
        "retention_days": retention_days,
        "data_dir": data_dir,
        "database_url": database_url,
        "database_schema": database_schema,
    }
    try:
        if apps_file is not None:
            given["apps"] = read_apps_file(apps_file)
        settings = Settings.from_env(
            os.environ, **{name: value for name, value in given.items() if value is not None}
        )
    except ValueError as exc:
        typer.echo(f"tavkit gc: {exc}", err=True)
        raise typer.Exit(2) from None
    days = settings.retention_days
    if not settings.collects:
        typer.echo(
            "tavkit gc: give --retention-days N (or set TAVKIT_RETENTION_DAYS, or an app's"
            " retentionDays in the apps file)",
            err=True,
        )
        raise typer.Exit(2)
    if not settings.database_url and not (settings.data_dir / "tavkit.db").is_file():
        # Opening SQLite would create an empty database (and its directory) instead.
        typer.echo(f"tavkit gc: no database in {settings.data_dir}", err=True)
        raise typer.Exit(1)

    async def run() -> GcReport:
        store = Store.open(settings.effective_database_url, schema=settings.database_schema)
        try:
            return await collect(
                store,
                settings.data_dir,
                retention_days=days,
                app_retention=settings.app_retention(),
                dry_run=dry_run,
            )
        finally:
            await store.close()

    try:
        report = asyncio.run(run())
    except (ValueError, TAvKitError) as exc:
        typer.echo(f"tavkit gc: {exc}", err=True)
        raise typer.Exit(1) from None
    typer.echo(json.dumps(report.to_json()) if as_json else _gc_summary(report, days))
    if report.failed:
        raise typer.Exit(1)


def _gc_summary(report: GcReport, days: int | None) -> str:
    """``tavkit gc``'s report for people: what went (or would go), the files by name."""

    def when(cutoff: float) -> str:
        return time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime(cutoff))

    lines = []
    if days is not None:
        lines.append(f"retention {days} day(s): what is older than {when(report.cutoff)}")
    for app, cutoff in sorted(report.app_cutoffs.items()):
        told = "kept forever" if cutoff is None else f"what is older than {when(cutoff)}"
        lines.append(f"app {app}, a retention of its own: {told}")
    lines.append("dry run, nothing deleted; would delete:" if report.dry_run else "deleted:")
    for label, count in (
        ("in-call messages", report.messages),
        ("journal events", report.journal),
        ("client log lines", report.client_logs),
        ("quality samples", report.quality_samples),
        ("recordings", report.recordings),
        ("recording files", len(report.files)),
        ("dead letters", report.dead_letters),
    ):
        lines.append(f"  {label:<18}{count:>10}")
    if report.files:
        lines.append(f"  files, {report.bytes} bytes in all:")
        lines.extend(f"    {name}" for name in report.files)
    if report.failed:
        lines.append("could not remove:")
        lines.extend(f"    {reason}" for reason in report.failed)
    return "\n".join(lines)


@turn_app.command("config")
def turn_config(
    realm: Annotated[
        str | None,
        typer.Option(help="coturn's realm (default: the host of the first turn: URL)."),
    ] = None,
    min_port: Annotated[int, typer.Option(help="Lowest relay port.")] = 49152,
    max_port: Annotated[int, typer.Option(help="Highest relay port.")] = 65535,
    cert: Annotated[
        Path | None, typer.Option(help="TLS certificate chain (PEM): adds a TLS listener.")
    ] = None,
    pkey: Annotated[Path | None, typer.Option(help="The certificate's key (PEM).")] = None,
    external_ip: Annotated[
        str | None,
        typer.Option(help="PUBLIC or PUBLIC/PRIVATE, when coturn is behind a 1:1 NAT."),
    ] = None,
    relay_ip: Annotated[
        list[str] | None, typer.Option(help="An address to relay from (repeatable).")
    ] = None,
) -> None:
    """Print a coturn configuration matching the server's settings.

    Read from the environment as ``tavkit serve`` does: the secret from
    TAVKIT_TURN_SECRET, ports (and the default realm) from the turn:/turns: URLs of
    TAVKIT_ICE_SERVERS, peer exceptions from TAVKIT_ICE_ALLOWED_NETWORKS. The output
    holds the secret: redirect it to a file only coturn's user can read.
    """
    from tavkit.server.turn import TurnOptions, coturn_config

    try:
        options = TurnOptions(
            realm=realm,
            min_port=min_port,
            max_port=max_port,
            cert=cert,
            pkey=pkey,
            external_ip=external_ip,
            relay_ips=tuple(relay_ip or ()),
        )
        text = coturn_config(Settings.from_env(os.environ), options)
    except ValueError as exc:
        typer.echo(f"tavkit turn config: {exc}", err=True)
        raise typer.Exit(2) from None
    typer.echo(text, nl=False)
