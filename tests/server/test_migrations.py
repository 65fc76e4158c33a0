"""The packaged migrations build exactly the schema the models describe, on both databases."""

from __future__ import annotations

import uuid
from typing import TYPE_CHECKING

import pytest
from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import text
from sqlalchemy.exc import DBAPIError

from tavkit.server.store.db import Store, alembic_config, all_metadata

if TYPE_CHECKING:
    from conftest import Database

OLD_SESSION = uuid.UUID("1b4e28ba-2fa1-11d2-883f-0016d3cca427")


def fresh(store: Store, value: uuid.UUID | None = None) -> object:
    """A session id as raw SQL wants it: a UUID for PostgreSQL, 32 hex digits for SQLite."""
    value = value or uuid.uuid4()
    return value if store.dialect == "postgresql" else value.hex


async def test_migrations_match_the_models_and_can_run_twice(database: Database):
    """After upgrade head there is no difference from the models; a second upgrade is a no-op."""
    store = Store.open(database.url, schema=database.schema)
    try:
        await store.migrate()
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
