"""The packaged migrations build exactly the schema the models describe, on both databases."""

from __future__ import annotations

import subprocess
import sys
import uuid
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest
from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import Connection, inspect, text
from sqlalchemy.exc import DBAPIError

from tavkit.server.store.db import HEAD_REVISION, Store, alembic_config, all_metadata

if TYPE_CHECKING:
    from conftest import Database

OLD_SESSION = uuid.UUID("1b4e28ba-2fa1-11d2-883f-0016d3cca427")


def fresh(store: Store, value: uuid.UUID | None = None) -> object:
    """A session id as raw SQL wants it: a UUID for PostgreSQL, 32 hex digits for SQLite."""
    value = value or uuid.uuid4()
    return value if store.dialect == "postgresql" else value.hex


async def migrate_with_alembic(store: Store, schema: str | None = None) -> None:
    """``alembic upgrade head``, even where ``Store.migrate`` would create from the models."""
    async with store.engine.begin() as conn:
        if schema:
            await conn.execute(text(f'CREATE SCHEMA IF NOT EXISTS "{schema}"'))
        await conn.run_sync(lambda c: command.upgrade(alembic_config(c), "head"))


async def test_migrations_match_the_models_and_can_run_twice(database: Database):
    """After upgrade head there is no difference from the models; a second upgrade is a no-op."""
    store = Store.open(database.url, schema=database.schema)
    try:
        await migrate_with_alembic(store, database.schema)
        await store.migrate()

        def differences(connection) -> list:
            context = MigrationContext.configure(connection, opts={"compare_type": True})
            return compare_metadata(context, all_metadata())

        async with store.engine.connect() as conn:
            diff = await conn.run_sync(differences)
            version = (await conn.exec_driver_sql("SELECT version_num FROM alembic_version")).all()
        assert diff == []
        head = ScriptDirectory.from_config(alembic_config()).get_current_head()
        assert version == [(head,)]
    finally:
        await store.close()


async def test_rooms_from_before_string_rooms_stay_numeric_and_kinds_stay_apart(
    database: Database,
):
    """Past 0010 an old session is still numeric room 123; no row is of both kinds or neither."""
    store = Store.open(database.url, schema=database.schema)
    try:
        async with store.engine.begin() as conn:
            if database.schema:
                await conn.execute(text(f'CREATE SCHEMA IF NOT EXISTS "{database.schema}"'))
            await conn.run_sync(lambda c: command.upgrade(alembic_config(c), "0009"))
            await conn.execute(text("INSERT INTO apps (sdk_app_id, created_at) VALUES (1, 0)"))
            await conn.execute(
                text(
                    "INSERT INTO room_sessions (id, sdk_app_id, room_id, opened_at)"
                    " VALUES (:id, 1, 123, 0)"
                ),
                {"id": fresh(store, OLD_SESSION)},
            )
        await store.migrate()
        async with store.engine.connect() as conn:
            rows = (await conn.exec_driver_sql("SELECT room_id, room_str FROM room_sessions")).all()
        assert [tuple(row) for row in rows] == [(123, "")]
        for room_id, room_str in ((0, ""), (5, "5"), (2**32, "")):
            with pytest.raises(DBAPIError):
                async with store.engine.begin() as conn:
                    await conn.execute(
                        text(
                            "INSERT INTO room_sessions (id, sdk_app_id, room_id, room_str,"
                            " opened_at) VALUES (:id, 1, :n, :s, 0)"
                        ),
                        {"id": fresh(store), "n": room_id, "s": room_str},
                    )
    finally:
        await store.close()


def _options(index: Any) -> list[tuple[str, str]]:
    """An index's dialect options (a partial index's WHERE) as comparable text."""
    return sorted((k, " ".join(str(v).split())) for k, v in index["dialect_options"].items())


def sqlite_schema(connection: Connection) -> dict[str, Any]:
    """Everything SQLite knows of a database's schema, in a comparable form: each table's
    columns in order (type, nullability, default, key), keys, indexes (partial ones with
    their WHERE), unique and check constraints, every object's name, and the version."""
    inspector = inspect(connection)
    tables: dict[str, Any] = {}
    for table in inspector.get_table_names():
        tables[table] = {
            "columns": [
                (c["name"], str(c["type"]), c["nullable"], c["default"], c.get("primary_key"))
                for c in inspector.get_columns(table)
            ],
            "primary key": inspector.get_pk_constraint(table),
            "foreign keys": sorted(map(repr, inspector.get_foreign_keys(table))),
            "indexes": sorted(
                (i["name"], i["column_names"], i["unique"], _options(i))
                for i in inspector.get_indexes(table)
            ),
            "unique": sorted(map(repr, inspector.get_unique_constraints(table))),
            "checks": sorted(
                (c["name"], " ".join(c["sqltext"].split()))
                for c in inspector.get_check_constraints(table)
            ),
        }
    objects = connection.exec_driver_sql(
        "SELECT type, name, tbl_name FROM sqlite_master ORDER BY type, name"
    ).all()
    version = connection.exec_driver_sql("SELECT version_num FROM alembic_version").all()
    return {"tables": tables, "objects": [tuple(o) for o in objects], "version": version}


async def test_a_fresh_sqlite_from_the_models_is_the_migrated_schema(tmp_path: Path):
    """A new SQLite database, created from the models and stamped, has exactly the schema
    (column order included) and the version that every migration replayed would give."""
    migrated = Store.open(f"sqlite+aiosqlite:///{tmp_path / 'migrated.db'}")
    created = Store.open(f"sqlite+aiosqlite:///{tmp_path / 'created.db'}")
    try:
        await migrate_with_alembic(migrated)
        await created.migrate()  # empty: created from the models
        schemas = []
        for store in (migrated, created):
            async with store.engine.connect() as conn:
                schemas.append(await conn.run_sync(sqlite_schema))
        assert schemas[1] == schemas[0]
        assert schemas[0]["version"] == [(HEAD_REVISION,)]
        await created.migrate()  # and Alembic, run on it later, finds nothing to do
        async with created.engine.connect() as conn:
            assert await conn.run_sync(sqlite_schema) == schemas[0]
    finally:
        await migrated.close()
        await created.close()


def test_the_stamped_revision_is_alembics_head():
    """``HEAD_REVISION`` names the newest migration (a new migration must update it)."""
    assert ScriptDirectory.from_config(alembic_config()).get_current_head() == HEAD_REVISION


def test_starting_on_a_fresh_sqlite_does_not_import_alembic(tmp_path: Path):
    """A new SQLite database is ready without Alembic; one that needs migrating loads it."""
    url = f"sqlite+aiosqlite:///{tmp_path / 'fresh.db'}"
    script = (
        "import asyncio, sys\n"
        "from tavkit.server.store.db import Store\n"
        "async def main(url):\n"
        "    store = Store.open(url)\n"
        "    await store.migrate()\n"
        "    await store.close()\n"
        f"asyncio.run(main({url!r}))\n"
        "print('alembic' in sys.modules)\n"
    )
    run = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, check=True, timeout=120
    )
    assert run.stdout.split() == ["False"]
