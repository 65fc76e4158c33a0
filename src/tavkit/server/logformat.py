"""The server's own logs as one JSON object per line, with the session and user in fields.

``tavkit serve --log-format json`` installs :class:`JsonFormatter` on the root
logger, so everything - tavkit, uvicorn, SQLAlchemy warnings - comes out as JSON a
log shipper can index without parsing prose. Each line has ``time`` (ISO 8601,
UTC), ``ts`` (Unix seconds), ``level``, ``logger`` and ``msg``, plus the context:

* fields passed with ``extra=`` whose names are in :data:`CONTEXT_FIELDS`
  (``session``, ``user``, ``sdkAppId``, ...), and
* fields bound for the current task with :func:`log_context`, so every line a
  request handler writes carries the session and user it serves.

Anything not JSON-able is written as its ``str``; an exception's traceback goes to
``exc``.

Secrets never reach a line: :class:`RedactingFilter` (installed by
:func:`configure_logging` on the handler and on uvicorn's and websockets' loggers)
rewrites every record, message, arguments and traceback, replacing with ``***`` what
:func:`redact` recognises -- a ``token=`` query value (uvicorn prints paths with
their query), the ``tavkit.token.`` subprotocol (websockets prints handshake headers
at DEBUG), anything shaped like a userSig or privateMapKey (TLS-sig v2: zlib and
base64, so it starts ``eJ``) or a socket token (base64url JSON: ``eyJ...``), and the
value after a secret's name (``userSig=``, ``"credential": ...``, ``password:``).
"""

from __future__ import annotations

import json
import logging
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from datetime import UTC, datetime
from types import MappingProxyType
from typing import Any, Final, Literal

from tavkit._redact import RedactingFilter, redact

__all__ = [
    "CONTEXT_FIELDS",
    "REDACTED_LOGGERS",
    "JsonFormatter",
    "RedactingFilter",
    "configure_logging",
    "install_redaction",
    "log_context",
    "redact",
]

CONTEXT_FIELDS: Final = frozenset(
    {"session", "user", "sdkAppId", "roomId", "connection", "peer", "event", "reason", "kind"}
)
"""Record attributes (from ``extra=``) copied into the JSON line."""

REDACTED_LOGGERS: Final = (
    "uvicorn",
    "uvicorn.error",
    "uvicorn.access",
    "uvicorn.asgi",
    "websockets",
    "websockets.server",
    "websockets.client",
)
"""Loggers that print URLs or handshake headers; each gets the filter of its own, so a
handler someone attaches to them directly still sees redacted records."""


def install_redaction(*loggers: str) -> None:
    """Add one :class:`RedactingFilter` to each named logger (idempotent)."""
    for name in loggers:
        target = logging.getLogger(name)
        if not any(isinstance(f, RedactingFilter) for f in target.filters):
            target.addFilter(RedactingFilter())


_EMPTY: Final[MappingProxyType[str, Any]] = MappingProxyType({})
_context: ContextVar[MappingProxyType[str, Any]] = ContextVar("tavkit_log_context", default=_EMPTY)


@contextmanager
def log_context(**fields: Any) -> Iterator[None]:
    """Add ``fields`` to every JSON log line written by this task inside the block."""
    merged = MappingProxyType(
        {**_context.get(), **{k: v for k, v in fields.items() if v is not None}}
    )
    token = _context.set(merged)
    try:
        yield
    finally:
        _context.reset(token)


class JsonFormatter(logging.Formatter):
    """Formats a record as one line of JSON (see the module docstring for the fields)."""

    def format(self, record: logging.LogRecord) -> str:
        """The record as compact JSON, context fields included."""
        line: dict[str, Any] = {
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "ts": round(record.created, 6),
            "level": record.levelname.lower(),
            "logger": record.name,
            "msg": record.getMessage(),
        }
        line.update(_context.get())
        for name in CONTEXT_FIELDS:
            value = record.__dict__.get(name)
            if value is not None:
                line[name] = value
        if record.exc_info:
            line["exc"] = self.formatException(record.exc_info)
        if record.stack_info:
            line["stack"] = self.formatStack(record.stack_info)
        return json.dumps(line, ensure_ascii=False, default=str)


def configure_logging(level: str = "info", fmt: Literal["text", "json"] = "text") -> None:
    """Send every logger's records to stderr as ``fmt`` at ``level`` (``tavkit serve``).

    Replaces the root logger's handlers, so calling it twice does not double lines.
    Run uvicorn with ``log_config=None`` so its loggers propagate here. Every line
    passes :class:`RedactingFilter`.
    """
    if fmt not in ("text", "json"):
        raise ValueError(f"log format must be 'text' or 'json', not {fmt!r}")
    handler = logging.StreamHandler(sys.stderr)
    if fmt == "json":
        handler.setFormatter(JsonFormatter())
    else:
        handler.setFormatter(logging.Formatter("%(levelname)s %(name)s: %(message)s"))
    handler.addFilter(RedactingFilter())
    install_redaction(*REDACTED_LOGGERS)
    root = logging.getLogger()
    for old in list(root.handlers):
        root.removeHandler(old)
    root.addHandler(handler)
    root.setLevel(level.upper())
