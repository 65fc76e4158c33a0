"""``tavkit serve`` and ``tavkit db upgrade``: the server's commands.

Every option is also a ``TAVKIT_*`` environment variable (see
:mod:`tavkit.server.settings`); an option given on the command line wins. The
server binds its socket before uvicorn starts, so ``--port 0`` works and the
printed URL is the one actually bound, printed once the app has started.

Secrets given as options (``--app ID:KEY``, ``--admin-key``, ``--turn-secret``,
``--metrics-token``) are visible to every user of the machine in the process list, so
``serve`` warns when it sees one; ``--apps-file`` and the environment keep them out of
it. ``--app`` and ``--apps-file`` on the command line replace ``TAVKIT_APPS`` and
``TAVKIT_APPS_FILE``.
The server runs under umask 077: what it writes in the data directory (the token
secret, the demo keys, SQLite, recordings) is for its own user only.
"""

from __future__ import annotations

import asyncio
import gc
import json
import os
import socket
import time
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, Final

import typer

from tavkit.errors import TAvKitError
from tavkit.protocol import MAX_FRAME_BYTES
from tavkit.server.logformat import configure_logging
from tavkit.server.settings import (
    Settings,
    parse_apps,
    parse_ice_servers,
    parse_networks,
    read_apps_file,
)

if TYPE_CHECKING:
    from tavkit.server.retention import GcReport

__all__ = ["db_app", "server_app"]

_START_TIMEOUT: Final = 180.0

server_app = typer.Typer(add_completion=False)
db_app = typer.Typer(help="Manage the server's database.", no_args_is_help=True)
server_app.add_typer(db_app, name="db")


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
        int | None, typer.Option(help=f"Members per room (default 6). {_env('MAX_MEMBERS')}")
    ] = None,
    close_grace: Annotated[
        float | None,
        typer.Option(help=f"Seconds an empty room stays open (default 2). {_env('CLOSE_GRACE')}"),
    ] = None,
    sweep_interval: Annotated[
        float | None, typer.Option(help=f"Seconds (default 1). {_env('SWEEP_INTERVAL')}")
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
    # Recording
    recording: Annotated[
        str | None,
        typer.Option(
            help="Recording policy of apps without their own: off, auto (every session) "
            f"or on-demand (admin start/stop); default off. {_env('RECORDING')}"
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
        "metrics_token": metrics_token,
        "data_dir": data_dir,
        "database_url": database_url,
        "database_schema": database_schema,
        "admin_user": admin_user,
        "admin_key": admin_key,
        "demo": demo,
        "unsafe_demo": unsafe_demo,
        "heartbeat_interval": heartbeat_interval,
        "heartbeat_timeout": heartbeat_timeout,
        "max_members": max_members,
        "close_grace": close_grace,
        "sweep_interval": sweep_interval,
        "turn_secret": turn_secret,
        "log_forward_url": log_forward_url,
        "recording": recording,
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
        if ice_servers is not None:
            given["ice_servers"] = parse_ice_servers(ice_servers)
        if ice_allowed_networks is not None:
            given["ice_allowed_networks"] = parse_networks(ice_allowed_networks)
        overrides = {name: value for name, value in given.items() if value is not None}
        os.umask(0o077)  # before prepare(), which may create the data dir and demo keys
        settings = prepare(Settings.from_env(os.environ, **overrides))
    except ValueError as exc:
        typer.echo(f"tavkit serve: {exc}", err=True)
        raise typer.Exit(2) from None
    if log_format not in ("text", "json"):
        typer.echo("tavkit serve: --log-format must be text or json", err=True)
        raise typer.Exit(2)
    configure_logging(log_level, "json" if log_format == "json" else "text")
    with asyncio.Runner(loop_factory=_loop_factory()) as runner:
        code = runner.run(_serve(settings, log_level))
    raise typer.Exit(code)


def _loop_factory() -> Callable[[], asyncio.AbstractEventLoop] | None:
    """uvloop's event loop when it is installed (``uvicorn[standard]`` brings it), else None.

    Every socket frame passes through the event loop several times (read, bus, write),
    and uvloop does that work in C: it is the cheapest capacity the server can get.
    """
    try:
        import uvloop
    except ImportError:
        return None
    return uvloop.new_event_loop


async def _serve(settings: Settings, log_level: str) -> int:
    """Serve until a signal; 1 if the app failed to start."""
    import uvicorn

    from tavkit.server.app import create_app

    class _Server(uvicorn.Server):
        """uvicorn's server with an event set once the app has started and listens."""

        def __init__(self, config: uvicorn.Config) -> None:
            super().__init__(config)
            self.ready = asyncio.Event()

        async def startup(self, sockets: list[socket.socket] | None = None) -> None:
            await super().startup(sockets=sockets)
            if self.started:
                self.ready.set()

    family = socket.AF_INET6 if ":" in settings.host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((settings.host.strip("[]"), settings.port))
    except OSError as exc:
        typer.echo(f"tavkit serve: cannot bind {settings.host}:{settings.port}: {exc}", err=True)
        sock.close()
        return 1
    port = sock.getsockname()[1]
    # log_config=None: uvicorn's loggers propagate to ours (configure_logging).
    # uvicorn would otherwise buffer frames up to 16 MiB before the socket sees them.
    config = uvicorn.Config(
        create_app(settings),
        log_level=log_level,
        lifespan="on",
        log_config=None,
        ws_max_size=MAX_FRAME_BYTES,
    )
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
        host = f"[{settings.host}]" if family == socket.AF_INET6 else settings.host
        url = f"http://{host}:{port}"
        typer.echo(f"tavkit serving on {url}")
        if settings.demo:
            typer.echo(f"demo: open {url}/ (sdkAppId {settings.apps[0].sdk_app_id})")
            typer.echo(_admin_hint(settings, url))
    await task
    sock.close()
    return 0 if server.started else 1


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
) -> None:
    """Delete in-call messages, client logs, quality samples and recordings past the retention.

    Messages and recordings go with their session, by its close time (an open session
    is never touched); log lines and quality samples by the time each was received.
    Safe while the server runs: it deletes in small batches.
    """
    from tavkit.server.retention import collect
    from tavkit.server.store.db import Store

    given = {
        "retention_days": retention_days,
        "data_dir": data_dir,
        "database_url": database_url,
        "database_schema": database_schema,
    }
    try:
        settings = Settings.from_env(
            os.environ, **{name: value for name, value in given.items() if value is not None}
        )
    except ValueError as exc:
        typer.echo(f"tavkit gc: {exc}", err=True)
        raise typer.Exit(2) from None
    days = settings.retention_days
    if days is None:
        typer.echo("tavkit gc: give --retention-days N (or set TAVKIT_RETENTION_DAYS)", err=True)
        raise typer.Exit(2)
    if not settings.database_url and not (settings.data_dir / "tavkit.db").is_file():
        # Opening SQLite would create an empty database (and its directory) instead.
        typer.echo(f"tavkit gc: no database in {settings.data_dir}", err=True)
        raise typer.Exit(1)

    async def run() -> GcReport:
        store = Store.open(settings.effective_database_url, schema=settings.database_schema)
        try:
            return await collect(store, settings.data_dir, retention_days=days, dry_run=dry_run)
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


def _gc_summary(report: GcReport, days: int) -> str:
    """``tavkit gc``'s report for people: what went (or would go), the files by name."""
    cutoff = time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime(report.cutoff))
    lines = [f"retention {days} day(s): what is older than {cutoff}"]
    lines.append("dry run, nothing deleted; would delete:" if report.dry_run else "deleted:")
    for label, count in (
        ("in-call messages", report.messages),
        ("client log lines", report.client_logs),
        ("quality samples", report.quality_samples),
        ("recordings", report.recordings),
        ("recording files", len(report.files)),
    ):
        lines.append(f"  {label:<18}{count:>10}")
    if report.files:
        lines.append(f"  files, {report.bytes} bytes in all:")
        lines.extend(f"    {name}" for name in report.files)
    if report.failed:
        lines.append("could not remove:")
        lines.extend(f"    {reason}" for reason in report.failed)
    return "\n".join(lines)
