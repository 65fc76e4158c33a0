"""The app factory: :func:`create_app` builds the ASGI app a host can serve or mount.

``tavkit serve`` is uvicorn over ``create_app(settings)``. A host application can
mount the same app inside its own; Starlette does not run a mounted app's lifespan,
so the host runs it from its own::

    calls = create_app(Settings.from_env(os.environ))
    host = FastAPI(lifespan=lambda _: calls.router.lifespan_context(calls))
    host.mount("/calls", calls)

The lifespan owns everything with a lifetime: it opens the store and applies the
migrations, creates the bus (in-process, or Redis with ``redis_url``) and every
service (rooms, messages, logs, recordings, the socket registry, the REST rate
limits), registers the configured apps, starts the heartbeat sweeper, the recorder,
the log forwarder, the webhook dispatcher and (with ``retention_days``) the retention
task, and puts them all in one :class:`ServerContext` on the app (read with
:func:`~tavkit.server.context.context_of`); it undoes all of it on shutdown.
"""

from __future__ import annotations

import asyncio
import ipaddress
import json
import logging
import os
import secrets
from collections.abc import AsyncIterator
from contextlib import AsyncExitStack, asynccontextmanager
from dataclasses import replace
from importlib.resources import files
from pathlib import Path
from typing import Final

from fastapi import FastAPI
from fastapi.middleware.cors import CORSMiddleware
from fastapi.staticfiles import StaticFiles

from tavkit import __version__
from tavkit.server import demo, health
from tavkit.server.admin import dashboard
from tavkit.server.admin import routes as admin_routes
from tavkit.server.admin import webhooks as webhook_routes
from tavkit.server.bus import Bus, InProcessBus
from tavkit.server.calls import routes as call_routes
from tavkit.server.calls.service import CallService
from tavkit.server.context import ServerContext
from tavkit.server.drain import Drain, DrainMiddleware, held
from tavkit.server.errors import install_error_handlers
from tavkit.server.headers import ReplicaHeaderMiddleware, SecurityHeadersMiddleware
from tavkit.server.im import routes as im_routes
from tavkit.server.im.service import MessageService
from tavkit.server.logs import routes as logs_routes
from tavkit.server.logs.forwarder import Forwarder
from tavkit.server.logs.routes import forwarder_config, watch_forwarder
from tavkit.server.logs.service import LogService
from tavkit.server.metrics import ObservedBus, install_metrics
from tavkit.server.proxies import ProxyHeadersMiddleware
from tavkit.server.ratelimit import RateLimited, RateLimits, on_rate_limited
from tavkit.server.recording import routes as recording_routes
from tavkit.server.recording.service import RecordingService
from tavkit.server.retention import RetentionTask
from tavkit.server.rooms import routes as rooms_routes
from tavkit.server.rooms.service import RoomService
from tavkit.server.rooms.sweeper import Sweeper
from tavkit.server.settings import AppConfig, Settings
from tavkit.server.sfu.modes import MediaModes
from tavkit.server.signaling.connection import SignalingConnection
from tavkit.server.signaling.lane import SocketLane
from tavkit.server.signaling.registry import SocketRegistry
from tavkit.server.signaling.tokens import load_or_create_secret
from tavkit.server.store.db import Store
from tavkit.server.webhooks import Dispatcher, configure_from_settings

__all__ = [
    "DEMO_ADMIN_KEY_FILE",
    "DEMO_APP_FILE",
    "DEMO_SDK_APP_ID",
    "create_app",
    "drain_app",
    "is_loopback",
    "prepare",
    "web_dir",
]

logger = logging.getLogger(__name__)

DEMO_SDK_APP_ID: Final = 1400000001
"""The sdkAppId demo mode creates when no app is configured."""
DEMO_APP_FILE: Final = "demo-app.json"
DEMO_ADMIN_KEY_FILE: Final = "admin-key"
"""Where demo mode keeps the admin key it creates when none is configured."""
_MIGRATE_TIMEOUT: Final = 120.0


def web_dir() -> Path:
    """The packaged web component (``tavkit/web``), served at ``/tavkit/``."""
    return Path(str(files("tavkit") / "web"))


def is_loopback(host: str) -> bool:
    """Whether binding ``host`` keeps the server reachable from this machine only."""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def prepare(settings: Settings) -> Settings:
    """Check demo mode's safety rule and give it its app; a no-op for ordinary settings.

    Demo mode lets anyone who can reach the server mint userSigs, so it refuses a
    non-loopback host, or any host behind ``trusted_proxies`` (a proxy makes it
    public), unless ``unsafe_demo`` says the operator means it. With no app
    configured it creates one whose random key is kept in the data directory, so the
    demo's sdkAppId and signatures survive restarts; with no admin key it creates one
    there too (``DEMO_ADMIN_KEY_FILE``), so the dashboard can be tried. Both files are
    owner-only. Raises ``ValueError``.
    """
    if not settings.demo:
        return settings
    if not is_loopback(settings.host) and not settings.unsafe_demo:
        raise ValueError(
            f"demo mode lets anyone mint userSigs; refusing to serve it on {settings.host}"
            " (bind 127.0.0.1, or add --unsafe-demo if you really mean it)"
        )
    if settings.trusted_proxies and not settings.unsafe_demo:
        # Behind a proxy a loopback bind says nothing: whoever reaches the proxy is in.
        raise ValueError(
            "demo mode lets anyone mint userSigs; refusing it behind --trusted-proxies"
            " (the proxy makes it public; add --unsafe-demo if you really mean it)"
        )
    if not settings.apps:
        settings = replace(settings, apps=(_demo_app(settings.data_dir),))
    if settings.admin_key is None:
        settings = replace(settings, admin_key=_demo_admin_key(settings.data_dir))
    return settings


def _demo_admin_key(data_dir: Path) -> str:
    """The demo's admin key, created (owner-readable only) on first use."""
    path = data_dir / DEMO_ADMIN_KEY_FILE
    if not path.exists():
        data_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
        try:
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        except FileExistsError:
            pass  # created concurrently; read theirs below
        else:
            with os.fdopen(fd, "w") as out:
                out.write(secrets.token_hex(32) + "\n")
    key = path.read_text().strip()
    if not key:
        raise ValueError(f"{path} is empty; delete it to make a new admin key")
    return key


def _demo_app(data_dir: Path) -> AppConfig:
    path = data_dir / DEMO_APP_FILE
    if not path.exists():
        data_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
        record = {"sdkAppId": DEMO_SDK_APP_ID, "key": secrets.token_hex(32)}
        try:
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        except FileExistsError:
            pass  # created concurrently; read theirs below
        else:
            with os.fdopen(fd, "w") as out:
                json.dump(record, out)
    try:
        record = json.loads(path.read_text())
        return AppConfig(int(record["sdkAppId"]), str(record["key"]))
    except (ValueError, KeyError, TypeError) as exc:
        raise ValueError(f"{path} is damaged ({exc}); delete it to make a new demo app") from None


async def _open_bus(settings: Settings, running: AsyncExitStack) -> Bus:
    """The in-process bus, or with ``redis_url`` a connected :class:`RedisBus` that
    ``running`` closes (the server does not start while Redis cannot be reached)."""
    if settings.redis_url is None:
        return InProcessBus()
    from tavkit.server.redis_bus import RedisBus  # redis-py loads only when it is used

    bus = RedisBus(settings.redis_url, prefix=settings.redis_prefix)
    return await running.enter_async_context(bus)


async def drain_app(app: FastAPI, within: float) -> int:
    """Drain a running app (see :mod:`tavkit.server.drain`): refuse new work, tell every
    socket to move, wait up to ``within`` seconds; how many sockets were left."""
    ctx = getattr(app.state, "tavkit", None)
    if not isinstance(ctx, ServerContext):
        return 0  # the lifespan has not started: nothing is held
    return await ctx.drain.move(held(ctx.sockets, ctx.user_sockets), within)


def create_app(settings: Settings | None = None) -> FastAPI:
    """The tavkit server as an ASGI app; ``None`` reads the settings from the environment."""
    if settings is None:
        settings = Settings.from_env(os.environ)
    settings = prepare(settings)
    drain = Drain()  # set by ``tavkit serve`` on SIGTERM (drain_app)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        socket_secret = load_or_create_secret(settings.data_dir)
        store = Store.open(settings.effective_database_url, schema=settings.database_schema)
        try:
            await asyncio.wait_for(store.migrate(), _MIGRATE_TIMEOUT)
            # Exits before the store closes, the bus last: a graceful shutdown finalises
            # every file and sends the forwarder's buffer (the recorder publishes as it
            # stops).
            async with AsyncExitStack() as running:
                bus = ObservedBus(await _open_bus(settings, running), metrics)
                rooms = RoomService(store, bus, settings)
                # Last out before the store closes: the heartbeats heard since the last
                # flush are written, so a graceful restart loses none.
                running.push_async_callback(rooms.aclose)
                await rooms.register_apps(settings.apps)
                if not settings.apps:
                    logger.warning("no app is configured: every call will be refused (use --app)")
                sockets: SocketRegistry[SignalingConnection] = SocketRegistry()
                sfu = None
                if settings.uses_sfu:
                    from tavkit.server.sfu.bridge import SfuBridge

                    sfu = SfuBridge(
                        settings.janus_urls,  # Settings refuses sfu/auto without one
                        api_secret=settings.janus_api_secret,
                        bus=bus,
                        store=store,
                        allowed_networks=settings.ice_allowed_networks,
                        # Ten sweeps of the rooms: 10 s by default, 1 s with a test's timers.
                        sweep_every=max(1.0, 10 * settings.sweep_interval),
                    )
                    # Before the bus closes, after the recorder: its rooms are destroyed in Janus.
                    await running.enter_async_context(sfu)
                recordings = RecordingService(
                    settings=settings,
                    store=store,
                    bus=bus,
                    rooms=rooms,
                    listening=sockets.listening,
                    sfu=sfu,
                )
                await configure_from_settings(store, settings)
                webhooks = Dispatcher(store, settings)
                calls = CallService(store, bus, rooms, settings)
                media_modes = await running.enter_async_context(MediaModes(settings, bus, store))
                config = forwarder_config(settings)
                forwarder = Forwarder(config) if config is not None else None
                app.state.tavkit = ServerContext(
                    settings=settings,
                    store=store,
                    bus=bus,
                    rooms=rooms,
                    messages=MessageService(store, bus),
                    logs=LogService(
                        store,
                        metrics=metrics,
                        forwarder=forwarder,
                        daily_cap=settings.log_daily_cap_of,
                    ),
                    recordings=recordings,
                    sockets=sockets,
                    metrics=metrics,
                    limits=RateLimits.for_settings(settings),
                    calls=calls,
                    media_modes=media_modes,
                    socket_secret=socket_secret,
                    drain=drain,
                    webhooks=webhooks,
                    sfu=sfu,
                )
                if forwarder is not None:
                    watch_forwarder(metrics, forwarder)
                    await running.enter_async_context(forwarder)
                await running.enter_async_context(recordings)
                await running.enter_async_context(Sweeper(rooms, settings.sweep_interval))
                await running.enter_async_context(calls)
                await running.enter_async_context(webhooks)
                if settings.collects:
                    retention = RetentionTask(
                        store,
                        settings.data_dir,
                        retention_days=settings.retention_days,
                        app_retention=settings.app_retention(),
                        interval=settings.retention_interval,
                    )
                    await running.enter_async_context(retention)
                yield
        finally:
            await store.close()

    app = FastAPI(
        title="tavkit",
        version=__version__,
        summary="Self-hosted audio/video rooms: REST v1 and the signaling socket.",
        lifespan=lifespan,
        redoc_url=None,
    )
    install_error_handlers(app)
    app.add_exception_handler(RateLimited, on_rate_limited)  # 429 + Retry-After
    # Outside the error handlers, so it counts every error.
    metrics = install_metrics(app, token=settings.metrics_token)
    if settings.cors_origins:
        app.add_middleware(
            CORSMiddleware,
            allow_origins=list(settings.cors_origins),
            allow_methods=["GET", "POST", "PUT", "DELETE"],  # every method a route uses
            allow_headers=["*"],
        )
    # Inside the header middlewares, so a draining replica's refusals carry them too.
    app.add_middleware(DrainMiddleware, drain=drain)
    app.add_middleware(SecurityHeadersMiddleware)  # CORS answers get them too
    app.add_middleware(ReplicaHeaderMiddleware, replica=settings.replica_name)
    # Outside every layer above: a signaling socket needs none of them (lane.py says why).
    app.add_middleware(SocketLane, drain=drain, replica=settings.replica_name)
    if settings.trusted_proxies:
        # Outermost: every layer inside (rate limits, socket URLs, logs) sees the client.
        app.add_middleware(ProxyHeadersMiddleware, proxies=settings.trusted_proxies)
    app.include_router(health.health)
    app.include_router(rooms_routes.api)
    app.include_router(im_routes.api)
    app.include_router(admin_routes.api)
    app.include_router(webhook_routes.api)
    app.include_router(call_routes.api)
    app.include_router(logs_routes.router)
    app.include_router(recording_routes.router)
    app.include_router(dashboard.router)
    if settings.demo:
        app.include_router(demo.demo)
        app.add_api_route(
            "/", demo.demo_page(web_dir() / "demo" / "index.html"), include_in_schema=False
        )
    app.mount("/tavkit", StaticFiles(directory=web_dir(), check_dir=False), name="tavkit-web")
    return app
