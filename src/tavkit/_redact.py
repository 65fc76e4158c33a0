"""Secrets out of log lines: :func:`redact` for text, :class:`RedactingFilter` for records.

Shared by the server (:mod:`tavkit.server.logformat` installs it on every line
``tavkit serve`` writes) and the Python client (its signaling socket's handshake
logger), so both recognise the same secrets: a ``token=`` query value, the
``tavkit.token.`` and ``tavkit.user.`` subprotocols, anything shaped like a userSig or privateMapKey
(TLS-sig v2 is zlib in base64, so it starts ``eJ``) or a socket token (base64url
JSON, ``eyJ...``), and the value after a secret's name (``userSig=``,
``"credential": ...``, ``password:``). Shapes, not values: a filter never holds the
secrets it hides.
"""

from __future__ import annotations

import logging
import re
from typing import Final

__all__ = ["RedactingFilter", "redact"]

_SECRET_NAMES: Final = (
    r"user_?sig|private_?map_?key|socket_?token|credential|password|passwd|secret"
    r"|admin_?key|app_?key|x-tavkit-usersig|x-tavkit-privatemapkey|authorization"
)
_REDACTIONS: Final = (
    # A ?token= on the signaling socket (refused, but an old client may still send it).
    (re.compile(r"(?i)(\btoken=)[^&\s\"'#]+"), r"\1***"),
    # The handshake subprotocol carrying the token.
    (re.compile(r"(tavkit\.token\.)[^\s,\"']+"), r"\1***"),
    # The user socket's subprotocol carrying the userSig (tavkit.protocol.calls).
    (re.compile(r"(tavkit\.user\.)[^\s,\"']+"), r"\1***"),
    # A socket token: base64url of a JSON object, a dot, base64url of its MAC.
    (re.compile(r"eyJ[A-Za-z0-9_-]{8,}\.[A-Za-z0-9_-]{16,}"), "eyJ***"),
    # A TLS-sig v2 userSig or privateMapKey: zlib ("x\x9c" -> "eJ") in the vendor's base64.
    (re.compile(r"eJ[A-Za-z0-9*_+/=-]{20,}"), "eJ***"),
    # The value after a secret's name: userSig=..., "credential": "...", password: ...
    (
        re.compile(rf"""(?i)((?:{_SECRET_NAMES})["']?\s*[:=]\s*["']?)[^\s"'&,;}}]+"""),
        r"\1***",
    ),
    # The key of an apps-file entry.
    (re.compile(r"""("key"\s*:\s*")[^"]+"""), r"\1***"),
)


def redact(text: str) -> str:
    """``text`` with everything that looks like a secret replaced by ``***``."""
    for pattern, replacement in _REDACTIONS:
        text = pattern.sub(replacement, text)
    return text


def _redact_arg(value: object) -> object:
    """A log argument, redacted; numbers stay numbers so ``%d`` still formats them."""
    if value is None or isinstance(value, int | float):
        return value
    text = value if isinstance(value, str) else str(value)
    cleaned = redact(text)
    if isinstance(value, str) or cleaned != text:
        return cleaned
    return value


class RedactingFilter(logging.Filter):
    """Rewrites a record so no secret :func:`redact` recognises reaches any output.

    It never drops a record. Installed on a handler it sees every record the handler
    writes, propagated ones included; on a logger, only that logger's own records.
    """

    def filter(self, record: logging.LogRecord) -> bool:
        """Redact the message, its arguments, the traceback and the stack; keep it."""
        if record.__dict__.get("_tavkit_redacted"):
            return True
        if isinstance(record.msg, str):
            record.msg = redact(record.msg)
        if isinstance(record.args, tuple):
            record.args = tuple(_redact_arg(arg) for arg in record.args)
        elif isinstance(record.args, dict):
            record.args = {key: _redact_arg(arg) for key, arg in record.args.items()}
        if record.exc_info and not record.exc_text:
            record.exc_text = logging.Formatter().formatException(record.exc_info)
        if record.exc_text:
            record.exc_text = redact(record.exc_text)
        if record.stack_info:
            record.stack_info = redact(record.stack_info)
        record.__dict__["_tavkit_redacted"] = True
        return True
