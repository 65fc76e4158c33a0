"""The tavkit room server: an ASGI app (:func:`create_app`) and its settings.

``tavkit serve`` runs it with uvicorn; a host application can mount it instead
(see :mod:`tavkit.server.app`). ``docs/protocol.md`` is its public contract and
``docs/server-internals.md`` describes how its modules fit together.

The names below are imported on first use, so that ``tavkit --help`` and the
signature commands do not pay for loading FastAPI and SQLAlchemy.
"""

from __future__ import annotations

from importlib import import_module
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from tavkit.server.app import create_app
    from tavkit.server.settings import AppConfig, Settings

__all__ = ["AppConfig", "Settings", "create_app"]

_HOMES = {
    "create_app": "tavkit.server.app",
    "AppConfig": "tavkit.server.settings",
    "Settings": "tavkit.server.settings",
}


def __getattr__(name: str) -> Any:
    home = _HOMES.get(name)
    if home is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(import_module(home), name)
