"""Reading a ``POST /v1/logs`` body: every field checked, every limit enforced, nothing stored.

A batch is accepted whole or refused whole, so a client never has to guess which
of its items were kept. Every refusal is server 10004 naming the first bad field
(``logs[3].level: ...``), except an unknown top-level shape, which is also 10004:
the body parsed as JSON, so 10001/10003 would be wrong.

Client clocks drift, and a quality chart that puts Alice's samples ten minutes
after Bob's is worse than no chart. A batch may therefore carry ``sentAt``, the
client's clock when it sent the batch; the server shifts every item by
``received_at - sentAt``, which is the clock offset plus half a round trip. Items
whose corrected time is more than a day old, or in the future, are refused.

One kind of line has a shape of its own: a ``join-timeline`` line (a client's join
phases for one remote member, :mod:`tavkit.protocol.timeline`) must carry a sound
timeline, or the batch is refused like any other bad field; the dashboard reads
these lines back as they are.
"""

from __future__ import annotations

import json
import math
import re
import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Final

from tavkit.errors import ServerCode, ServerError, lookup
from tavkit.protocol import JOIN_TIMELINE_EVENT, USER_ID_RE, json_problem, timeline_problem
from tavkit.server.store.logs_models import LOG_LEVELS

__all__ = [
    "CANDIDATE_TYPES",
    "MAX_DATA_BYTES",
    "MAX_ITEMS",
    "LogBatch",
    "LogItem",
    "QualityItem",
    "body_credentials",
    "parse_batch",
]

MAX_ITEMS: Final = 500
"""Log lines plus quality samples in one batch."""
MAX_DATA_BYTES: Final = 2048
"""A log line's ``data`` object, serialised."""
MAX_ERROR_MSG: Final = 500
MAX_PAST: Final = 86400.0
"""How old (seconds) an item may be once its time is corrected."""
MAX_FUTURE: Final = 60.0
CANDIDATE_TYPES: Final = frozenset({"host", "srflx", "prflx", "relay"})

_UUID_RE: Final = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}")
_EVENT_RE: Final = re.compile(r"[A-Za-z0-9_.:/-]{1,64}")
_TOP_KEYS: Final = frozenset({"roomUuid", "logs", "quality", "sentAt", "dropped", "auth"})
_LOG_KEYS: Final = frozenset({"at", "level", "event", "error", "data"})
_AUTH_KEYS: Final = frozenset({"sdkAppId", "userId", "userSig", "privateMapKey"})
# (wire name, column, low, high, integer?)
_QUALITY_FIELDS: Final = (
    ("rttMs", "rtt_ms", 0.0, 60_000.0, False),
    ("jitterMs", "jitter_ms", 0.0, 60_000.0, False),
    ("packetLoss", "packet_loss", 0.0, 1.0, False),
    ("bitrateInKbps", "bitrate_in_kbps", 0.0, 10_000_000.0, False),
    ("bitrateOutKbps", "bitrate_out_kbps", 0.0, 10_000_000.0, False),
    ("fps", "fps", 0.0, 1000.0, False),
    ("width", "width", 0.0, 16384.0, True),
    ("height", "height", 0.0, 16384.0, True),
)
_QUALITY_KEYS: Final = frozenset(
    {"at", "peerId", "candidateType", *(wire for wire, *_ in _QUALITY_FIELDS)}
)


@dataclass(frozen=True, slots=True)
class LogItem:
    """One checked log line; ``data`` is its JSON text."""

    at: float
    level: str
    event: str
    error_module: str | None = None
    error_code: int | None = None
    error_msg: str | None = None
    data: str | None = None


@dataclass(frozen=True, slots=True)
class QualityItem:
    """One checked quality sample of the connection to ``peer_id``."""

    at: float
    peer_id: str
    rtt_ms: float | None = None
    jitter_ms: float | None = None
    packet_loss: float | None = None
    bitrate_in_kbps: float | None = None
    bitrate_out_kbps: float | None = None
    fps: float | None = None
    width: int | None = None
    height: int | None = None
    candidate_type: str | None = None


@dataclass(frozen=True, slots=True)
class LogBatch:
    """A checked batch, ready to store."""

    room_uuid: uuid.UUID
    logs: tuple[LogItem, ...]
    quality: tuple[QualityItem, ...]
    dropped: int


def _bad(where: str, problem: str) -> ServerError:
    return ServerError(ServerCode.INVALID_PARAMETER, f"{where}: {problem}")


def _number(value: Any, where: str, low: float, high: float) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise _bad(where, "expected a number")
    number = float(value)
    if not math.isfinite(number) or not low <= number <= high:
        raise _bad(where, f"expected a number in {low:g}..{high:g}")
    return number


def _text(value: Any, where: str, pattern: re.Pattern[str], hint: str) -> str:
    if not isinstance(value, str) or not pattern.fullmatch(value):
        raise _bad(where, f"expected {hint}")
    return value


def _storable(value: Any, where: str) -> None:
    """What is stored must read back: :func:`~tavkit.protocol.json_problem`'s rule.

    The request body was held to it whole on arrival (``json_body``); this keeps the
    rule with the fields that are stored, whoever calls :func:`parse_batch`.
    """
    problem = json_problem(value, where)
    if problem is not None:
        raise problem


def _keys(item: Mapping[str, Any], allowed: frozenset[str], where: str) -> None:
    unknown = sorted(set(item) - allowed)
    if unknown:
        raise _bad(where, f"unknown field {unknown[0]!r}")


def _time(value: Any, where: str, offset: float, now: float) -> float:
    at = _number(value, where, 0.0, 1e11) + offset
    if not now - MAX_PAST <= at <= now + MAX_FUTURE:
        raise _bad(where, "more than a day old or in the future (check sentAt)")
    return at


def _log_item(raw: Any, where: str, offset: float, now: float) -> LogItem:
    if not isinstance(raw, dict):
        raise _bad(where, "expected an object")
    _keys(raw, _LOG_KEYS, where)
    at = _time(raw.get("at"), f"{where}.at", offset, now)
    level = raw.get("level")
    if level not in LOG_LEVELS:
        raise _bad(f"{where}.level", f"expected one of {', '.join(LOG_LEVELS)}")
    event = _text(raw.get("event"), f"{where}.event", _EVENT_RE, "1-64 of A-Z a-z 0-9 _ . : / -")
    module = code = message = None
    error = raw.get("error")
    if error is not None:
        module, code, message = _seed_error(error, f"{where}.error")
    data = raw.get("data")
    if event == JOIN_TIMELINE_EVENT and (problem := timeline_problem(data)) is not None:
        raise _bad(f"{where}.data", problem)
    text = None
    if data is not None:
        if not isinstance(data, dict):
            raise _bad(f"{where}.data", "expected an object")
        _storable(data, f"{where}.data")
        text = json.dumps(data, ensure_ascii=False, separators=(",", ":"), allow_nan=False)
        if len(text.encode()) > MAX_DATA_BYTES:
            raise _bad(f"{where}.data", f"over {MAX_DATA_BYTES} bytes once serialised")
    return LogItem(at, str(level), event, module, code, message, text)


def _seed_error(raw: Any, where: str) -> tuple[str, int, str]:
    """A ``{module, errorCode, errorMsg}`` naming a code the seed has (no invented codes)."""
    if not isinstance(raw, dict) or set(raw) != {"module", "errorCode", "errorMsg"}:
        raise _bad(where, "expected {module, errorCode, errorMsg}")
    module, code, message = raw["module"], raw["errorCode"], raw["errorMsg"]
    if isinstance(code, bool) or not isinstance(code, int | str):
        raise _bad(f"{where}.errorCode", "expected an integer")
    try:
        known = lookup(str(module), code)
    except (KeyError, ValueError):
        raise _bad(where, f"{module}:{code} is not one of the seed's error codes") from None
    if not isinstance(message, str) or len(message) > MAX_ERROR_MSG:
        raise _bad(f"{where}.errorMsg", f"expected a string of at most {MAX_ERROR_MSG} characters")
    _storable(message, f"{where}.errorMsg")
    if "\x00" in message:  # a text column (PostgreSQL's above all) cannot hold NUL
        raise _bad(f"{where}.errorMsg", "expected text without NUL characters")
    return known.module.value, int(known), message


def _quality_item(raw: Any, where: str, offset: float, now: float) -> QualityItem:
    if not isinstance(raw, dict):
        raise _bad(where, "expected an object")
    _keys(raw, _QUALITY_KEYS, where)
    values: dict[str, Any] = {
        "at": _time(raw.get("at"), f"{where}.at", offset, now),
        "peer_id": _text(raw.get("peerId"), f"{where}.peerId", USER_ID_RE, "a userId"),
    }
    for wire, column, low, high, integer in _QUALITY_FIELDS:
        value = raw.get(wire)
        if value is None:
            continue
        number = _number(value, f"{where}.{wire}", low, high)
        if integer:
            if number != int(number):
                raise _bad(f"{where}.{wire}", "expected an integer")
            values[column] = int(number)
        else:
            values[column] = number
    candidate = raw.get("candidateType")
    if candidate is not None and candidate not in CANDIDATE_TYPES:
        raise _bad(
            f"{where}.candidateType", f"expected one of {', '.join(sorted(CANDIDATE_TYPES))}"
        )
    values["candidate_type"] = candidate
    return QualityItem(**values)


def body_credentials(body: Mapping[str, Any]) -> dict[str, str] | None:
    """The ``auth`` object of the sendBeacon path as strings, or None when absent.

    ``navigator.sendBeacon`` cannot set headers, so a page that is being unloaded
    puts its credentials in the body; they are checked exactly like the headers.
    Server 10005 when the object is malformed, as for malformed headers.
    """
    raw = body.get("auth")
    if raw is None:
        return None
    if not isinstance(raw, dict) or set(raw) - _AUTH_KEYS:
        raise ServerError(ServerCode.UNAUTHORISED, "auth: expected {sdkAppId, userId, userSig}")
    out: dict[str, str] = {}
    for key, value in raw.items():
        if isinstance(value, bool) or not isinstance(value, str | int):
            raise ServerError(ServerCode.UNAUTHORISED, f"auth.{key}: expected a string")
        out[key] = str(value)
    return out


def parse_batch(body: Mapping[str, Any], *, now: float) -> LogBatch:
    """Check ``body`` against the contract; raise server 10004 naming the first problem."""
    _keys(body, _TOP_KEYS, "body")
    room_uuid = _text(body.get("roomUuid"), "roomUuid", _UUID_RE, "a lowercase session UUID")
    logs, quality = body.get("logs", []), body.get("quality", [])
    if not isinstance(logs, list):
        raise _bad("logs", "expected a list")
    if not isinstance(quality, list):
        raise _bad("quality", "expected a list")
    if len(logs) + len(quality) > MAX_ITEMS:
        raise _bad("body", f"at most {MAX_ITEMS} items per batch, got {len(logs) + len(quality)}")
    offset = 0.0
    if body.get("sentAt") is not None:
        offset = now - _number(body["sentAt"], "sentAt", 0.0, 1e11)
    dropped = body.get("dropped", 0)
    if isinstance(dropped, bool) or not isinstance(dropped, int) or not 0 <= dropped <= 10**9:
        raise _bad("dropped", "expected a count (integer >= 0)")
    return LogBatch(
        room_uuid=uuid.UUID(room_uuid),
        logs=tuple(_log_item(item, f"logs[{i}]", offset, now) for i, item in enumerate(logs)),
        quality=tuple(
            _quality_item(item, f"quality[{i}]", offset, now) for i, item in enumerate(quality)
        ),
        dropped=dropped,
    )
