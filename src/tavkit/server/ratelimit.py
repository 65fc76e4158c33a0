"""Token buckets on the REST API, per user and per client address, answered with 429.

One client looping ``enter`` opens a session row each time (and a recorder under
``--recording auto``); one looping ``heartbeat`` or a history read takes the database
for each request. So the routes that cost something spend a token first:

=========================  =========================  ==========  =======
route                      kind                       tokens/s    burst
=========================  =========================  ==========  =======
``POST .../enter``         ``enter``                  0.5         10
an enter opening a room   ``session``                1/6 (**)    10 (**)
``POST .../exit``          ``exit``                   0.5         10
``POST .../heartbeat``     ``heartbeat``              1 (*)       10
``POST /v1/logs``          the log service's bucket   2           20
``GET .../messages``       ``history``                5           30
admin routes               ``admin``                  10          100
every route above          one bucket per address     100         1000
=========================  =========================  ==========  =======

(*) or ``4 / heartbeat_interval`` when that is more, so a server told to beat fast
never limits its own clients.
(**) ``sessions_per_minute`` a minute, in bursts of as many (10); 0 turns it off.
Only an enter that would open a session (the room has none open) spends one, so a
user looping ``enter`` over many room ids is stopped, while joining a call that is
already running never is; a refused enter opens nothing.

Why these numbers: an honest client heartbeats once per interval (5 s), enters and
exits once per call, a page reload costs one exit and one enter, the reporter sends
a log batch every 5 s and a history read pages through at most a few screens; ten
times that fits in every burst, and sustained use stays far below each rate. An
address carries many users behind one NAT: 100/s covers about 250 members each
heartbeating and reporting. Behind a reverse proxy every request comes from the
proxy's address unless it sets ``X-Forwarded-For`` *and* is trusted (uvicorn trusts
loopback; others through ``FORWARDED_ALLOW_IPS``); otherwise raise
``address_rate`` or set it to 0.

The order of the checks, and why:

1. the address bucket, before the credentials are verified: a flood of forged or
   expired signatures costs a dictionary lookup, not a signature check and a log line;
2. the user's bucket of that kind, after they are verified and keyed by the verified
   ``(sdkAppId, userId)``: nobody can spend another user's tokens by naming them.

A refusal is :class:`RateLimited`: the seed's server 10004 "rate limited", with HTTP
429 and ``Retry-After`` (whole seconds until a token is back); the one definition
every limited route (and log ingest's own bucket and daily cap) uses. Memory is
bounded: a bucket that refilled is the same as no bucket, so full ones are dropped
every minute, and past :data:`MAX_KEYS` the least recently used go first. An IPv6
client is keyed by its /64, the block one subscriber gets.
"""

from __future__ import annotations

import ipaddress
import logging
import math
import time
from collections import OrderedDict
from collections.abc import Callable, Hashable, Mapping
from dataclasses import dataclass
from types import MappingProxyType
from typing import TYPE_CHECKING, Final, Generic, Literal, TypeVar

from fastapi import Request
from fastapi.responses import JSONResponse

from tavkit.errors import ServerCode, ServerError
from tavkit.protocol import TokenBucket
from tavkit.server.errors import error_response

if TYPE_CHECKING:
    from tavkit.server.auth import Caller
    from tavkit.server.settings import Settings

__all__ = [
    "ADDRESS_LIMIT",
    "MAX_KEYS",
    "USER_LIMITS",
    "BucketTable",
    "Kind",
    "Limit",
    "RateLimited",
    "RateLimits",
    "address_key",
    "on_rate_limited",
]

logger = logging.getLogger(__name__)

K = TypeVar("K", bound=Hashable)

Kind = Literal["enter", "session", "exit", "heartbeat", "history", "admin"]
"""The per-user buckets: one table each, so a chatty dashboard never costs an enter."""


@dataclass(frozen=True)
class Limit:
    """A token bucket's shape: ``rate`` tokens a second, at most ``burst`` at once."""

    rate: float
    burst: float

    def __post_init__(self) -> None:
        if not (math.isfinite(self.rate) and self.rate > 0):
            raise ValueError(f"a rate limit needs a positive rate, not {self.rate}")
        if not (math.isfinite(self.burst) and self.burst >= 1):
            raise ValueError(f"a rate limit needs a burst of at least 1, not {self.burst}")


USER_LIMITS: Final[Mapping[Kind, Limit]] = MappingProxyType(
    {
        "enter": Limit(0.5, 10),
        "session": Limit(10 / 60, 10),
        "exit": Limit(0.5, 10),
        "heartbeat": Limit(1.0, 10),
        "history": Limit(5.0, 30),
        "admin": Limit(10.0, 100),
    }
)
"""Each kind's per-user bucket (the module docstring says why)."""
ADDRESS_LIMIT: Final = Limit(100.0, 1000.0)
"""The per-address bucket shared by every limited route."""
MAX_KEYS: Final = 50_000
"""Buckets one table keeps at most (about 200 bytes each)."""
_PRUNE_EVERY: Final = 60.0
_HEARTBEATS_PER_INTERVAL: Final = 4.0


class RateLimited(ServerError):
    """Server 10004 "rate limited", answered with HTTP 429 and ``Retry-After``.

    Raise it anywhere a request is handled; :func:`on_rate_limited` (registered by
    the app factory) turns it into the response. ``reason`` labels the refusal in
    metrics (``rate``, ``quota``).
    """

    status: Final = 429

    def __init__(self, what: str, retry_after: float, *, reason: str = "rate") -> None:
        self.retry_after = max(1, math.ceil(retry_after)) if math.isfinite(retry_after) else 1
        self.reason = reason
        super().__init__(
            ServerCode.INVALID_PARAMETER,
            f"rate limited: {what}; retry after {self.retry_after} s",
        )

    def response(self) -> JSONResponse:
        """The seed-shaped 429 with its ``Retry-After``."""
        return error_response(self, status=self.status, **{"Retry-After": str(self.retry_after)})


async def on_rate_limited(_request: Request, exc: Exception) -> JSONResponse:
    """The exception handler for :class:`RateLimited` (more specific than the seed's)."""
    assert isinstance(exc, RateLimited)
    return exc.response()


class BucketTable(Generic[K]):
    """One token bucket per key, all of one :class:`Limit`, in bounded memory."""

    def __init__(
        self,
        limit: Limit,
        *,
        max_keys: int = MAX_KEYS,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if max_keys < 1:
            raise ValueError("a bucket table needs room for at least one key")
        self.limit = limit
        self._max_keys = max_keys
        self._clock = clock
        self._buckets: OrderedDict[K, TokenBucket] = OrderedDict()
        self._pruned_at = clock()

    def __len__(self) -> int:
        return len(self._buckets)

    def take(self, key: K, cost: float = 1.0) -> float:
        """Spend ``cost`` tokens of ``key``'s bucket: 0.0 if it could, else the seconds
        until it can (nothing is spent then)."""
        self._prune()
        bucket = self._buckets.get(key)
        if bucket is None:
            self._make_room()
            bucket = TokenBucket(self.limit.rate, self.limit.burst, clock=self._clock)
            self._buckets[key] = bucket
        else:
            self._buckets.move_to_end(key)
        if bucket.allow(cost):
            return 0.0
        return max(cost - bucket.tokens, 0.0) / bucket.rate

    def _prune(self) -> None:
        """Drop every full bucket once a minute: a new one would start full anyway."""
        now = self._clock()
        if now - self._pruned_at < _PRUNE_EVERY:
            return
        self._pruned_at = now
        full = [key for key, bucket in self._buckets.items() if bucket.tokens >= bucket.burst]
        for key in full:
            del self._buckets[key]

    def _make_room(self) -> None:
        """Past ``max_keys``: drop the full buckets, then the least recently used.

        Down to 90% so a table that stays full does this once per tenth of its size,
        not on every new key.
        """
        if len(self._buckets) < self._max_keys:
            return
        full = [key for key, bucket in self._buckets.items() if bucket.tokens >= bucket.burst]
        for key in full:
            del self._buckets[key]
        target = min(self._max_keys * 9 // 10, self._max_keys - 1)
        while len(self._buckets) > target:
            self._buckets.popitem(last=False)


def address_key(host: str) -> str:
    """The bucket key of a client address: itself, or its /64 for IPv6."""
    try:
        ip = ipaddress.ip_address(host)
    except ValueError:
        return host
    if isinstance(ip, ipaddress.IPv6Address):
        if ip.ipv4_mapped is not None:
            return str(ip.ipv4_mapped)
        return str(ipaddress.IPv6Network((ip, 64), strict=False))
    return str(ip)


class RateLimits:
    """The REST API's buckets: one table per :data:`Kind` and one per client address."""

    def __init__(
        self,
        *,
        users: Mapping[Kind, Limit] = USER_LIMITS,
        address: Limit | None = ADDRESS_LIMIT,
        enabled: bool = True,
        max_keys: int = MAX_KEYS,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.enabled = enabled
        self._users: dict[Kind, BucketTable[tuple[int, str]]] = {
            kind: BucketTable(limit, max_keys=max_keys, clock=clock)
            for kind, limit in users.items()
        }
        self._address: BucketTable[str] | None = (
            BucketTable(address, max_keys=max_keys, clock=clock) if address is not None else None
        )

    @classmethod
    def for_settings(cls, settings: Settings) -> RateLimits:
        """The limits ``settings`` ask for (``rate_limits``, ``address_rate``/``_burst``)."""
        users = dict(USER_LIMITS)
        beat = users["heartbeat"]
        users["heartbeat"] = Limit(
            max(beat.rate, _HEARTBEATS_PER_INTERVAL / settings.heartbeat_interval), beat.burst
        )
        if settings.sessions_per_minute > 0:
            per_minute = settings.sessions_per_minute
            users["session"] = Limit(per_minute / 60, per_minute)
        else:
            del users["session"]
        address = (
            Limit(settings.address_rate, settings.address_burst)
            if settings.address_rate > 0
            else None
        )
        return cls(users=users, address=address, enabled=settings.rate_limits)

    def address(self, request: Request) -> None:
        """Spend a token of the request's client address; :class:`RateLimited` if none is left."""
        if not self.enabled or self._address is None or request.client is None:
            return
        key = address_key(request.client.host)
        wait = self._address.take(key)
        if wait:
            logger.debug("rate limited address %s on %s", key, request.url.path)
            raise RateLimited("too many requests from this address", wait)

    def user(self, kind: Kind, caller: Caller) -> None:
        """Spend a token of the caller's ``kind`` bucket; :class:`RateLimited` if none is left."""
        table = self._users.get(kind)
        if not self.enabled or table is None:
            return
        wait = table.take((caller.sdk_app_id, caller.user_id))
        if wait:
            logger.debug("rate limited %s/%s on %s", caller.sdk_app_id, caller.user_id, kind)
            what = "new sessions" if kind == "session" else f"{kind} requests"
            raise RateLimited(f"too many {what} from {caller.user_id}", wait)
