"""The database handle: one async engine, its session factory, and the migrations.

SQLite (the default, through SQLAlchemy's aiosqlite dialect) is set up for a server
rather than a script: statements run on the event loop's thread, and a call that finds
the database locked waits for it in a worker thread (:mod:`.inline_sqlite`), WAL so
readers never wait for the writer, foreign keys on, and ``BEGIN IMMEDIATE`` for every
transaction. The last point matters for writers: Python's sqlite3 starts a transaction
lazily at the first write, so a transaction that reads, then writes, can find its
snapshot stale and fail with "database is locked" no matter how long it waits; taking
the write lock up front makes such transactions queue instead.

A new SQLite file is created owner-only (0600, in a 0700 directory if tavkit makes
it); SQLite gives its ``-wal`` and ``-shm`` files the database file's mode.

PostgreSQL (asyncpg) needs nothing special; ``database_schema`` puts the tables in
a schema of their own through the connection's ``search_path``.

A SQLite database with no tables at all is not migrated: its tables are created from
the models and stamped with the newest revision (:data:`HEAD_REVISION`), which gives
the same schema (``tests/server/test_migrations.py`` compares the two, column order
included) without importing Alembic (with Mako and, when present, Pygments) or
replaying every migration's table rebuilds: a few hundred milliseconds of a fresh
test server's start. Every other database, and every PostgreSQL one, goes through Alembic.

:func:`storage_errors` is the one place where the database's exceptions become the
seed's server 10006, so callers never see SQLAlchemy's types.
"""

from __future__ import annotations

import asyncio
import importlib
import logging
import os
import pkgutil
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from pathlib import Path
from typing import TYPE_CHECKING, Any, Final

from sqlalchemy import (
    Column,
    Connection,
    MetaData,
    PrimaryKeyConstraint,
    String,
    Table,
    event,
    text,
)
from sqlalchemy.engine import make_url
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.ext.asyncio import (
    AsyncEngine,
    AsyncSession,
    async_sessionmaker,
    create_async_engine,
)

from tavkit.errors import ServerCode, ServerError
from tavkit.server.store import inline_sqlite

if TYPE_CHECKING:
    from alembic.config import Config

__all__ = [
    "HEAD_REVISION",
    "MIGRATIONS_DIR",
    "Store",
    "alembic_config",
    "all_metadata",
    "storage_errors",
    "upgrade",
]

logger = logging.getLogger(__name__)

MIGRATIONS_DIR: Final = Path(__file__).parent / "migrations"
"""The Alembic script directory; it ships inside the package."""

_PG_CONNECT_TIMEOUT: Final = 10.0
_PG_COMMAND_TIMEOUT: Final = 30.0
# Any constant works; it only has to be the same for every tavkit replica.
_MIGRATION_LOCK_KEY: Final = 0x7A4B17
HEAD_REVISION: Final = "0013_session_sfu_since"
"""The newest migration's revision, stamped on a SQLite database created from the
models; a test checks that it is Alembic's head (a new migration must change it)."""
_READONLY: Final = "tavkit_readonly"


def all_metadata() -> MetaData:
    """The ``MetaData`` of every table, after importing each ``*models`` module of the store.

    Feature modules keep their tables beside the room tables (``logs_models.py``, ...)
    on the same declarative base; importing them all here gives Alembic and the
    schema tests the whole picture without a list to keep up to date.
    """
    package = __name__.rpartition(".")[0]
    for module in pkgutil.iter_modules([str(Path(__file__).parent)]):
        if module.name.endswith("models"):
            importlib.import_module(f"{package}.{module.name}")
    from tavkit.server.store.models import Base

    return Base.metadata


@contextmanager
def storage_errors(action: str) -> Iterator[None]:
    """Turn a database failure inside the block into ``ServerError(DATABASE)`` (10006).

    ``action`` says what was being done, for the error message; the driver's own
    text goes to the log only, since it can name tables and values.
    """
    try:
        yield
    except (SQLAlchemyError, OSError, TimeoutError) as exc:
        logger.warning("database failure while %s: %s", action, exc)
        raise ServerError(ServerCode.DATABASE, f"the database failed while {action}") from exc


class Store:
    """The server's database: an :class:`AsyncEngine` plus an ``AsyncSession`` factory."""

    def __init__(self, engine: AsyncEngine, *, schema: str | None = None) -> None:
        self.engine = engine
        self.schema = schema
        self.sessions: async_sessionmaker[AsyncSession] = async_sessionmaker(
            engine, expire_on_commit=False
        )
        """Sessions for transactions that may write."""
        self.reads: async_sessionmaker[AsyncSession] = async_sessionmaker(
            engine.execution_options(**{_READONLY: True}), expire_on_commit=False
        )
        """Sessions for transactions that only read (on SQLite they never wait for a writer)."""
        # SQLite has one writer at a time; a writer that finds the database locked polls
        # with growing sleeps (up to 100 ms) until the busy timeout. Queueing this
        # process's writers on one lock instead hands the database over the moment it is
        # free (see store.unit_of_work); PostgreSQL needs no such thing.
        self.writer: asyncio.Lock | None = asyncio.Lock() if self.dialect == "sqlite" else None
        """The process's SQLite writer lock, None on PostgreSQL."""

    @property
    def dialect(self) -> str:
        """``sqlite`` or ``postgresql``."""
        return self.engine.dialect.name

    @classmethod
    def open(cls, url: str, *, schema: str | None = None) -> Store:
        """Create the engine for ``url`` (no connection is made until first use)."""
        parsed = make_url(url)
        backend = parsed.get_backend_name()
        if backend == "sqlite":
            return cls(_sqlite_engine(url))
        if backend == "postgresql":
            if parsed.get_driver_name() != "asyncpg":
                raise ValueError("PostgreSQL URLs must use the asyncpg driver (postgresql+asyncpg)")
            return cls(_postgres_engine(url, schema), schema=schema)
        raise ValueError(f"unsupported database {backend!r}: use SQLite or PostgreSQL")

    async def migrate(self) -> None:
        """Bring the schema to the newest revision (Alembic ``upgrade head``).

        On PostgreSQL an advisory lock makes replicas that start together take turns.
        """
        async with self.engine.begin() as conn:
            if self.dialect == "postgresql":
                if self.schema:
                    await conn.execute(text(f'CREATE SCHEMA IF NOT EXISTS "{self.schema}"'))
                await conn.execute(
                    text("SELECT pg_advisory_xact_lock(:key)"), {"key": _MIGRATION_LOCK_KEY}
                )
            await conn.run_sync(_create_or_upgrade)

    async def ping(self) -> None:
        """Check that the database answers and holds tavkit's tables; raise 10006 if not."""
        with storage_errors("checking its health"):
            async with self.engine.execution_options(**{_READONLY: True}).connect() as conn:
                await conn.execute(text("SELECT COUNT(*) FROM apps"))

    async def close(self) -> None:
        """Close every pooled connection."""
        await self.engine.dispose()


def alembic_config(connection: Connection | None = None) -> Config:
    """An Alembic configuration for the packaged migrations, optionally bound to ``connection``."""
    from alembic.config import Config

    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS_DIR))
    if connection is not None:
        config.attributes["connection"] = connection
    return config


def _create_or_upgrade(connection: Connection) -> None:
    """Create an empty SQLite database's tables from the models, else migrate."""
    if connection.dialect.name == "sqlite" and _is_empty(connection):
        _create_from_models(connection)
    else:
        _upgrade(connection)


def _is_empty(connection: Connection) -> bool:
    # Inside the caller's BEGIN IMMEDIATE: a process that starts alongside waits for
    # this one's tables and then sees them.
    objects: int = connection.exec_driver_sql("SELECT count(*) FROM sqlite_master").scalar_one()
    return objects == 0


def _create_from_models(connection: Connection) -> None:
    """Create every table from the models and stamp :data:`HEAD_REVISION`, as
    ``alembic upgrade head`` would leave an empty database."""
    all_metadata().create_all(connection)
    # Alembic's own version table, as Alembic creates it.
    versions = Table(
        "alembic_version",
        MetaData(),
        Column("version_num", String(32), nullable=False),
        PrimaryKeyConstraint("version_num", name="alembic_version_pkc"),
    )
    versions.create(connection)
    connection.execute(versions.insert().values(version_num=HEAD_REVISION))


def _upgrade(connection: Connection) -> None:
    from alembic import command  # only a database that needs migrating pays for Alembic

    command.upgrade(alembic_config(connection), "head")


def _sqlite_engine(url: str) -> AsyncEngine:
    database = make_url(url).database
    if database and database != ":memory:" and not database.startswith("file:"):
        path = Path(database).expanduser()
        path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
        # Created here, not by SQLite, which would use 0644 (less the umask).
        with suppress(FileExistsError):
            os.close(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600))
    # Statements run on the loop's thread (store.inline_sqlite says why); a call that
    # finds the database locked waits in a worker thread instead, so SQLite's own busy
    # timeout is zero here.
    target = database or ":memory:"
    engine = create_async_engine(url, async_creator=lambda: inline_sqlite.connect(target))

    @event.listens_for(engine.sync_engine, "connect")
    def _on_connect(dbapi_connection: Any, _record: Any) -> None:
        # Hand transaction control to SQLAlchemy (see _on_begin).
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        for pragma in (
            "PRAGMA journal_mode=WAL",
            "PRAGMA synchronous=NORMAL",
            "PRAGMA foreign_keys=ON",
            "PRAGMA busy_timeout=0",
        ):
            cursor.execute(pragma)
        cursor.close()

    @event.listens_for(engine.sync_engine, "begin")
    def _on_begin(conn: Connection) -> None:
        # Readers keep SQLite's deferred BEGIN: in WAL mode they read a snapshot and
        # never queue behind the writer.
        readonly = conn.get_execution_options().get(_READONLY, False)
        conn.exec_driver_sql("BEGIN" if readonly else "BEGIN IMMEDIATE")

    return engine


def _postgres_engine(url: str, schema: str | None) -> AsyncEngine:
    connect_args: dict[str, Any] = {
        "timeout": _PG_CONNECT_TIMEOUT,
        "command_timeout": _PG_COMMAND_TIMEOUT,
    }
    if schema:
        connect_args["server_settings"] = {"search_path": schema}
    return create_async_engine(
        url,
        connect_args=connect_args,
        pool_size=10,
        max_overflow=20,
        pool_timeout=_PG_CONNECT_TIMEOUT,
        pool_pre_ping=True,
    )


async def upgrade(url: str, *, schema: str | None = None) -> None:
    """Apply the migrations to the database at ``url`` (``tavkit db upgrade``)."""
    store = Store.open(url, schema=schema)
    try:
        with storage_errors("upgrading the schema"):
            await asyncio.wait_for(store.migrate(), timeout=120)
    finally:
        await store.close()
