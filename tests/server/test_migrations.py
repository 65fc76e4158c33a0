"""The packaged migrations build exactly the schema the models describe, on both databases."""

from __future__ import annotations

from typing import TYPE_CHECKING

from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from alembic.script import ScriptDirectory

from tavkit.server.store.db import Store, alembic_config, all_metadata

if TYPE_CHECKING:
    from conftest import Database


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
