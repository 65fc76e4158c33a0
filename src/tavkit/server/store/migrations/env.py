"""Alembic's entry point for tavkit's migrations.

tavkit runs Alembic programmatically (:meth:`tavkit.server.store.db.Store.migrate`)
and hands it an open connection in ``config.attributes["connection"]``, inside a
transaction it owns. Run by hand (``alembic -x url=... upgrade head`` with
``script_location`` pointing here), this script opens its own engine instead; in
offline mode it prints the SQL.
"""

from __future__ import annotations

import asyncio

from alembic import context
from sqlalchemy import Connection

from tavkit.server.store.db import Store, all_metadata

config = context.config
target_metadata = all_metadata()


def _configure(connection: Connection) -> None:
    context.configure(
        connection=connection,
        target_metadata=target_metadata,
        render_as_batch=connection.dialect.name == "sqlite",
        compare_type=True,
    )
    with context.begin_transaction():
        context.run_migrations()


def _url() -> str:
    url = context.get_x_argument(as_dictionary=True).get("url") or config.get_main_option(
        "sqlalchemy.url"
    )
    if not url:
        raise ValueError("give the database URL with -x url=... or sqlalchemy.url")
    return url


async def _run_with_own_engine() -> None:
    store = Store.open(_url())
    try:
        async with store.engine.begin() as conn:
            await conn.run_sync(_configure)
    finally:
        await store.close()


if context.is_offline_mode():
    context.configure(url=_url(), target_metadata=target_metadata, literal_binds=True)
    with context.begin_transaction():
        context.run_migrations()
elif (shared := config.attributes.get("connection")) is not None:
    _configure(shared)
else:
    asyncio.run(_run_with_own_engine())
