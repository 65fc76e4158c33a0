"""Persistence for rooms: tables (:mod:`.models`), the engine (:mod:`.db`), migrations.

Alembic's scripts live in ``migrations/`` inside the package, so an installed tavkit
can upgrade its own database (``tavkit db upgrade``, or automatically at start).
"""

from tavkit.server.store.db import MIGRATIONS_DIR, Store, storage_errors

__all__ = ["MIGRATIONS_DIR", "Store", "storage_errors"]
