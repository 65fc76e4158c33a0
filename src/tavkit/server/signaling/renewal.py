"""Credentials that end during a call: the warning, the ``renew``, the removal.

A member's userSig (and privateMapKey, if it entered with one) has an end:
``TLS.time + TLS.expire``, and for a key also its grant's ``expire_at``. ``enter``
writes those ends into the socket token (:class:`~tavkit.server.signaling.tokens.
SocketClaims`), so every socket of the connection -- resumes included -- knows them
without asking the database. From there (``docs/protocol.md`` section 2)::

    warn_at   = end - min(RENEW_AHEAD, (end - now) / 2)   -> expiring {expiresAt, deadline}
    deadline  = end + Settings.renew_grace                 -> removed, reason "expired"

``renew`` (:func:`renew`) must verify for the same app, user and room, the way
``enter`` checks them (the seed's codes on refusal: avkit 70346, 80/82/86/87). A new
privateMapKey's privileges replace the old ones at once, fewer bits included; a
``renew`` without one keeps the privileges and the key's end the member had, so
leaving the key out can never widen what a member may do. The answer, ``renewed``,
carries a fresh socket token (with the new ends and privileges, for resumes) and
fresh ICE servers whose TURN credentials end with the new credentials plus the grace
(:func:`tavkit.server.ice.ice_servers_for`, which documents how far coturn honours it).

The removal is the room service's ``leave_connection(..., "expired")``, the same path
as a timeout or an admin's removal: the membership is dropped, the others get
``member-left`` and this socket gets ``removed`` and close 4002.

:class:`ExpiryWatch` is the timer: one task per socket, owned and cancelled by the
:class:`~tavkit.server.signaling.connection.SignalingConnection`, restarted by each
accepted ``renew``. Times are Unix seconds (the signatures' clock), read from an
injectable wall clock.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import replace
from typing import Final

from tavkit.errors import ServerCode
from tavkit.protocol import Expiring, FrameError, Renew, Renewed, ServerMessage
from tavkit.server.auth import HeaderCredentials, authenticate
from tavkit.server.context import ServerContext
from tavkit.server.ice import ice_servers_for
from tavkit.server.signaling.tokens import SocketClaims, mint

__all__ = ["RENEW_AHEAD", "ExpiryWatch", "renew", "warn_at"]

logger = logging.getLogger(__name__)

RENEW_AHEAD: Final = 60.0
"""``expiring`` goes out this long before the end at most (half the time left, if less)."""


def warn_at(expires_at: float, now: float) -> float:
    """When to send ``expiring`` for credentials ending at ``expires_at``, seen at ``now``."""
    return expires_at - min(RENEW_AHEAD, max(expires_at - now, 0.0) / 2)


def renew(
    ctx: ServerContext, claims: SocketClaims, msg: Renew, *, now: float | None = None
) -> tuple[SocketClaims, Renewed]:
    """Check ``msg`` against the connection ``claims``; return the new claims and the answer.

    Raises what ``enter`` would for the same credentials (a
    :class:`~tavkit.auth.SignatureError` with the seed's code), or server 10004 for
    a connection whose token predates renewal (enter again instead).
    """
    if claims.room_id is None:
        raise FrameError(
            ServerCode.INVALID_PARAMETER,
            "renew: this connection's token predates renewal; enter the room again",
            ref=msg.id,
        )
    creds = HeaderCredentials(claims.sdk_app_id, claims.user_id, msg.user_sig, msg.private_map_key)
    caller = authenticate(ctx, creds, entering_room=claims.room_id)
    key_end: float | None
    if msg.private_map_key is not None:
        privileges, key_end = caller.privileges, caller.private_map_key_expires_at
    else:  # no key now: keep the one entered with (its bits and its end)
        privileges, key_end = claims.privileges, claims.private_map_key_expires_at
    renewed = replace(
        claims,
        privileges=privileges,
        user_sig_expires_at=caller.user_sig_expires_at,
        private_map_key_expires_at=key_end,
    )
    settings = ctx.settings
    issued = time.time() if now is None else now
    expires_at = renewed.credentials_expire_at
    assert expires_at is not None  # a verified userSig always has an end
    token = mint(
        ctx.socket_secret,
        sdk_app_id=renewed.sdk_app_id,
        room_uuid=renewed.room_uuid,
        user_id=renewed.user_id,
        connection_id=renewed.connection_id,
        ttl=settings.socket_token_ttl,
        privileges=renewed.privileges,
        room_id=renewed.room_id,
        user_sig_expires_at=renewed.user_sig_expires_at,
        private_map_key_expires_at=renewed.private_map_key_expires_at,
        now=issued,
    )
    servers = ice_servers_for(
        settings, renewed.user_id, issued, until=expires_at + settings.renew_grace
    )
    answer = Renewed(
        expires_at=expires_at,
        privileges=renewed.privileges,
        ice_servers=tuple(servers),
        socket_token=token,
        ref=msg.id,
    )
    return renewed, answer


class ExpiryWatch:
    """Warns a socket's member before its credentials end, and removes it after the grace.

    ``send`` queues a frame for the member; ``expire`` takes the member out of the room
    (reason ``expired``). :meth:`watch` (re)starts the timer for an end; :meth:`aclose`
    stops it for good.

    A timer on the loop, not a sleeping task: every held socket has one, and a task
    with its coroutine frame costs a held socket more memory than the timer handle.
    """

    __slots__ = (
        "_clock",
        "_expire",
        "_grace",
        "_name",
        "_send",
        "_task",
        "_timer",
        "_warn_at",
        "expires_at",
    )

    def __init__(
        self,
        *,
        grace: float,
        send: Callable[[ServerMessage], None],
        expire: Callable[[], Awaitable[None]],
        name: str,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._grace = grace
        self._send = send
        self._expire = expire
        self._name = name
        self._clock = clock
        self._timer: asyncio.TimerHandle | None = None
        self._warn_at: float | None = None  # None once ``expiring`` went out
        self._task: asyncio.Task[None] | None = None  # ``expire`` being carried out
        self.expires_at: float | None = None

    @property
    def deadline(self) -> float | None:
        """When the member is removed unless it renews (None: its credentials never end)."""
        return None if self.expires_at is None else self.expires_at + self._grace

    def watch(self, expires_at: float | None) -> None:
        """Time credentials ending at ``expires_at`` (None: nothing to time), replacing any."""
        self._cancel()
        self.expires_at = expires_at
        if expires_at is not None:
            self._warn_at = warn_at(expires_at, self._clock())
            self._tick()

    async def aclose(self) -> None:
        """Stop timing; wait for a removal under way to end."""
        task = self._cancel()
        if task is not None:
            await asyncio.gather(task, return_exceptions=True)

    def _cancel(self) -> asyncio.Task[None] | None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        task, self._task = self._task, None
        if task is not None and task is not asyncio.current_task():
            task.cancel()
        return task

    def _tick(self) -> None:
        """Warn or remove when it is time, else look again (within a minute)."""
        self._timer = None
        expires_at, deadline = self.expires_at, self.deadline
        if expires_at is None or deadline is None:
            return
        if self._warn_at is not None:
            if self._sleep_until(self._warn_at):
                return
            self._warn_at = None
            self._send(Expiring(expires_at=expires_at, deadline=deadline))
        if self._sleep_until(deadline):
            return
        self._task = asyncio.create_task(self._remove(), name=f"{self._name} expiry")

    async def _remove(self) -> None:
        await self._expire()

    def _sleep_until(self, when: float) -> bool:
        """Come back to :meth:`_tick` if ``when`` is still ahead; whether it is.

        Wall-clock time in slices, so a clock that steps is noticed within a minute
        (there is no event to wait for: the signatures' end is a time of day).
        """
        left = when - self._clock()
        if left <= 0:
            return False
        self._timer = asyncio.get_running_loop().call_later(min(left, 60.0), self._tick)
        return True
