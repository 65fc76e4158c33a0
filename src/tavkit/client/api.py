"""The room server's REST API (``/v1``) for the Python client, over httpx.

Every call carries the caller's credentials as headers (``docs/protocol.md`` section
1), has a timeout and is retried a bounded number of times when the *network* or a
gateway fails (connection refused or reset, timeout, 502/503/504 without a seed
error body). The server's own answers are never retried blindly: a seed-shaped error
body becomes the matching :class:`~tavkit.errors.TAvKitError` at once, except a
503 (database down), which is retried and then raised as the server said it.

When the retries run out the failure is the seed's ``{"module": "http",
"errorCode": 10000}`` (:class:`~tavkit.errors.HttpError`). ``enter``, ``heartbeat``
and ``exit`` are safe to repeat: entering again replaces our own membership, and a
second exit answers 14004.

A 429 (server 10004 "rate limited", :mod:`tavkit.server.ratelimit`) is the server
asking for a pause, so it is never retried at once: ``enter`` waits the answer's
``Retry-After`` and tries again, as long as its waits add up to at most
``rate_limit_wait`` seconds; every other call raises :class:`RateLimitedError`, which
carries the wait (the heartbeat skips beats until then).
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass
from typing import Any, Final

import httpx

from tavkit.auth import Privilege
from tavkit.errors import HttpCode, HttpError, ServerCode, ServerError, TAvKitError
from tavkit.protocol import PUBLISH_ALL, Member, RoomId, parse_room_id, room_path

__all__ = ["Credentials", "EnterResult", "RateLimitedError", "RoomApi", "plain_http_transport"]

logger = logging.getLogger(__name__)

_RETRY_STATUSES: Final = frozenset({502, 503, 504})
_MAX_BACKOFF: Final = 2.0
_MAX_RETRY_AFTER: Final = 3600.0
"""A longer (or unreadable) ``Retry-After`` is read as this: a day-long cap is a refusal."""


class RateLimitedError(ServerError):
    """The server's 429: server 10004 "rate limited"; ask again after ``retry_after`` seconds."""

    def __init__(self, message: str, retry_after: float) -> None:
        super().__init__(ServerCode.INVALID_PARAMETER, message)
        self.retry_after = retry_after


@dataclass(frozen=True, slots=True)
class Credentials:
    """Who is calling: the seed's ``start`` options that authenticate every request."""

    sdk_app_id: int
    user_id: str
    user_sig: str
    private_map_key: str | None = None

    def headers(self) -> dict[str, str]:
        """The ``X-TAvKit-*`` headers of the contract."""
        headers = {
            "X-TAvKit-SdkAppId": str(self.sdk_app_id),
            "X-TAvKit-UserId": self.user_id,
            "X-TAvKit-UserSig": self.user_sig,
        }
        if self.private_map_key:
            headers["X-TAvKit-PrivateMapKey"] = self.private_map_key
        return headers

    def __repr__(self) -> str:
        return f"Credentials(sdk_app_id={self.sdk_app_id}, user_id={self.user_id!r}, ...)"


@dataclass(frozen=True, slots=True)
class EnterResult:
    """The ``enter`` response: the session, the others, timers, ICE and the socket."""

    room_uuid: str
    room_id: RoomId
    user_id: str
    members: tuple[Member, ...]
    heartbeat_interval: float
    heartbeat_timeout: float
    ice_servers: tuple[dict[str, Any], ...]
    ice_transport_policy: str
    privileges: int
    socket_url: str
    socket_token: str
    socket_token_expires_in: float

    @classmethod
    def from_wire(cls, body: dict[str, Any]) -> EnterResult:
        """Parse the response; ``KeyError``/``TypeError``/``ValueError`` if it is not one."""
        return cls(
            room_uuid=str(body["roomUuid"]),
            room_id=parse_room_id(body["roomId"]),
            user_id=str(body["userId"]),
            members=tuple(_member(m) for m in body.get("members", [])),
            heartbeat_interval=float(body["heartbeatInterval"]),
            heartbeat_timeout=float(body["heartbeatTimeout"]),
            ice_servers=tuple(dict(s) for s in body.get("iceServers") or []),
            ice_transport_policy=str(body.get("iceTransportPolicy", "all")),
            privileges=int(body.get("privileges", Privilege.ALL)),
            socket_url=str(body["socketUrl"]),
            socket_token=str(body["socketToken"]),
            socket_token_expires_in=float(body.get("socketTokenExpiresIn", 60)),
        )

    def __repr__(self) -> str:
        return f"EnterResult(room_uuid={self.room_uuid!r}, members={len(self.members)}, ...)"


def _member(raw: dict[str, Any]) -> Member:
    return Member(
        user_id=str(raw["userId"]),
        joined_at=float(raw.get("joinedAt", 0.0)),
        muted=bool(raw.get("muted", False)),
        camera=bool(raw.get("camera", True)),
        publish=int(raw.get("publish", PUBLISH_ALL)),
    )


def plain_http_transport(server: str) -> httpx.AsyncBaseTransport | None:
    """For an ``http://`` server, a transport that skips setting TLS up; else None (default).

    httpx builds a certificate-verifying TLS context for every client, whatever the
    URL, and loading the CA bundle costs tens of milliseconds of CPU on the event
    loop - in the join path, before ``enter``. Plain HTTP never uses it (no redirect
    is followed), so an ``http://`` client goes without; ``https://`` verifies as ever.
    """
    if not server.lower().startswith("http://"):
        return None
    return httpx.AsyncHTTPTransport(verify=False)  # no TLS at all: there is nothing to verify


class RoomApi:
    """REST calls for one user, with timeouts and bounded retries.

    ``server`` is the base URL (``http://host:port``). ``timeout`` bounds each
    attempt in seconds; ``retries`` is how many times a failed attempt is repeated
    (0 disables retrying); ``backoff`` is the first pause, doubled each time up to 2 s.
    ``rate_limit_wait`` is how long ``enter`` may wait in all for the server's 429s to
    pass (its ``Retry-After``) before raising :class:`RateLimitedError`; 0 never waits.
    ``transport`` is for embedding (an ASGI transport, a proxy); ``None`` is plain HTTP.
    """

    def __init__(
        self,
        server: str,
        credentials: Credentials,
        *,
        timeout: float = 10.0,
        retries: int = 3,
        backoff: float = 0.25,
        rate_limit_wait: float = 30.0,
        transport: httpx.AsyncBaseTransport | None = None,
    ) -> None:
        if retries < 0:
            raise ValueError("retries must be 0 or more")
        if not rate_limit_wait >= 0:
            raise ValueError("rate_limit_wait must be 0 or more seconds")
        self._rate_limit_wait = rate_limit_wait
        self.credentials = credentials
        self._retries = retries
        self._backoff = backoff
        self._client = httpx.AsyncClient(
            base_url=server.rstrip("/"),
            timeout=httpx.Timeout(timeout),
            headers=credentials.headers(),
            transport=transport or plain_http_transport(server),
        )

    def set_credentials(self, credentials: Credentials) -> None:
        """Use ``credentials`` for every call from now on (after a ``renew``)."""
        self.credentials = credentials
        self._client.headers = httpx.Headers(credentials.headers())

    async def enter(self, room_id: RoomId) -> EnterResult:
        """Enter ``room_id`` (a number, or a ``str`` for a string room): the session, the
        other members and the socket token.

        Waits out the server's 429s for up to ``rate_limit_wait`` seconds in all.
        """
        body = await self._patient_call("POST", f"/v1/{room_path(room_id)}/enter", json={})
        try:
            return EnterResult.from_wire(body)
        except (KeyError, TypeError, ValueError, ServerError) as exc:
            raise HttpError(HttpCode.NETWORK, f"malformed enter response: {exc!r}") from exc

    async def heartbeat(self, room_id: RoomId) -> float:
        """Tell the server we are alive; return the interval it wants.

        A 429 raises :class:`RateLimitedError` at once: the next beat is the retry.
        """
        body = await self._call("POST", f"/v1/{room_path(room_id)}/heartbeat")
        return float(body.get("heartbeatInterval", 5.0))

    async def exit(self, room_id: RoomId) -> None:
        """Leave ``room_id`` (the REST twin of the socket's ``leave``)."""
        await self._call("POST", f"/v1/{room_path(room_id)}/exit")

    async def users(self, room_id: RoomId) -> list[Member]:
        """The room's members, the caller included."""
        body = await self._call("GET", f"/v1/{room_path(room_id)}/users")
        return [_member(m) for m in body.get("members", [])]

    async def session(self, room_uuid: str) -> dict[str, Any]:
        """A session's record: members with leave reasons, and its events."""
        return await self._call("GET", f"/v1/sessions/{room_uuid}")

    async def create_call(self, body: dict[str, Any]) -> dict[str, Any]:
        """``POST /v1/calls``: ring callees (``docs/protocol.md`` section 7).

        Not retried after the server may have seen it (a retry would ring twice): only a
        connection that was never made is tried again.
        """
        return await self._call("POST", "/v1/calls", json=body, once=True)

    async def call_action(
        self, call_id: str, verb: str, body: dict[str, Any] | None = None
    ) -> dict[str, Any]:
        """``POST /v1/calls/{call_id}/{verb}`` (accept, decline, cancel, hangup)."""
        return await self._call("POST", f"/v1/calls/{call_id}/{verb}", json=body or {})

    async def get_call(self, call_id: str) -> dict[str, Any]:
        """``GET /v1/calls/{call_id}``: the call's record (a participant's own)."""
        return await self._call("GET", f"/v1/calls/{call_id}")

    async def aclose(self) -> None:
        """Close the connection pool."""
        await self._client.aclose()

    async def _patient_call(self, method: str, path: str, **kwargs: Any) -> dict[str, Any]:
        """:meth:`_call`, waiting out 429s while their waits fit in ``rate_limit_wait``."""
        waited = 0.0
        while True:
            try:
                return await self._call(method, path, **kwargs)
            except RateLimitedError as exc:
                if waited + exc.retry_after > self._rate_limit_wait:
                    raise
                logger.info("%s %s: %s; waiting %g s", method, path, exc.message, exc.retry_after)
                await asyncio.sleep(exc.retry_after)
                waited += exc.retry_after

    async def _call(
        self, method: str, path: str, *, once: bool = False, **kwargs: Any
    ) -> dict[str, Any]:
        last: str = "no attempt"
        pending: TAvKitError | None = None
        for attempt in range(self._retries + 1):
            if attempt:
                await asyncio.sleep(min(self._backoff * 2 ** (attempt - 1), _MAX_BACKOFF))
            try:
                response = await self._client.request(method, path, **kwargs)
            except httpx.ConnectError as exc:
                last = f"ConnectError: {exc}" if str(exc) else "ConnectError"
                logger.info("%s %s failed (attempt %d): %s", method, path, attempt + 1, last)
                continue
            except httpx.TransportError as exc:
                last = f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__
                logger.info("%s %s failed (attempt %d): %s", method, path, attempt + 1, last)
                if once:
                    break
                continue
            body = _json(response)
            if response.is_success and body is not None:
                return body
            if once and response.status_code in _RETRY_STATUSES and _seed_error(body) is None:
                last = f"HTTP {response.status_code}"
                break
            seed = _seed_error(body)
            if seed is not None and response.status_code == 429:
                raise RateLimitedError(seed.message, _retry_after(response))
            if seed is not None and response.status_code != 503:
                raise seed
            if response.status_code in _RETRY_STATUSES or seed is not None:
                pending = seed
                last = f"HTTP {response.status_code}"
                continue
            if response.is_success:
                raise HttpError(HttpCode.NETWORK, f"{method} {path}: the answer is not JSON")
            raise ServerError(
                ServerCode.INTERNAL, f"{method} {path}: HTTP {response.status_code}, no error body"
            )
        if pending is not None:
            raise pending
        raise HttpError(
            HttpCode.NETWORK, f"{method} {path} failed after {self._retries + 1} attempts: {last}"
        )


def _json(response: httpx.Response) -> dict[str, Any] | None:
    try:
        body = response.json()
    except ValueError:
        return None
    return body if isinstance(body, dict) else None


def _retry_after(response: httpx.Response) -> float:
    """The answer's ``Retry-After`` in seconds, 1 to an hour (1 if absent; seconds form only)."""
    try:
        seconds = float(response.headers.get("Retry-After", "1"))
    except ValueError:
        return _MAX_RETRY_AFTER
    if not seconds >= 0:  # NaN too
        return _MAX_RETRY_AFTER
    return min(max(seconds, 1.0), _MAX_RETRY_AFTER)  # never 0: no tight loop


def _seed_error(body: dict[str, Any] | None) -> TAvKitError | None:
    if body is None or "errorCode" not in body or "module" not in body:
        return None
    try:
        return TAvKitError.from_dict(body)
    except ValueError:
        return None
