"""Which Janus holds a session's VideoRoom room: several instances, chosen by load.

``tavkit serve --janus-url A --janus-url B`` gives the bridge several Janus. A session's
room lives on one of them, all its members with it; the ``sfu_rooms`` table
(:class:`~tavkit.server.store.sfu_models.SfuRoomRow`) says which, so every replica
reading the store agrees::

    a session's first socket     its row, if any, names the Janus (another replica
                                 placed it); else the reachable Janus with the fewest
                                 members (open memberships of open sessions placed
                                 there, from the store) gets it, ties to the first given
    that Janus dies              the bridge asks again, that one excluded: its rooms'
                                 members move to the one chosen (or, with none left,
                                 get server 10000)
    the room is destroyed        the row goes
    every sweep                  rooms of closed sessions (a replica that died
                                 mid-call left them) are destroyed, their rows go

Secrets: every Janus shares one ``api_secret`` (``Settings.janus_api_secret``). A
room's VideoRoom secret is not random and not stored: :func:`room_secret` derives it
from that API secret and the session's UUID, so any replica can destroy (or take over)
a room another made, and the database holds no secret at all.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import hmac
import logging
import time
import uuid
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Final

from sqlalchemy import delete, func, select, update

from tavkit.server.sfu.janus import JanusError, JanusSession, JanusUnavailable, VideoRoomHandle
from tavkit.server.store.models import MemberRow, SessionRow
from tavkit.server.store.sfu_models import SfuRoomRow
from tavkit.server.store.unit_of_work import transaction

if TYPE_CHECKING:
    from sqlalchemy.ext.asyncio import AsyncSession

    from tavkit.server.store.db import Store
    from tavkit.server.store.unit_of_work import Outbox

__all__ = ["Instance", "Placements", "choose", "room_secret", "shown"]

logger = logging.getLogger(__name__)

_NO_SUCH_ROOM: Final = 426


def room_secret(api_secret: str | None, room: str) -> str:
    """The VideoRoom secret of ``room``: HMAC-SHA256 of its id under the Janus API secret.

    Every replica derives the same one, so none needs it stored. Without an API secret
    (a Janus anyone reaching it may drive) the secret is derived from an empty key: no
    weaker than that Janus already is.
    """
    key = (api_secret or "").encode()
    digest = hmac.new(key, f"tavkit-videoroom:{room}".encode(), hashlib.sha256).digest()
    return base64.urlsafe_b64encode(digest).decode().rstrip("=")


def choose(urls: Sequence[str], loads: Mapping[str, int], exclude: Iterable[str] = ()) -> list[str]:
    """``urls`` to try, least loaded first (ties keep the order given), without ``exclude``."""
    excluded = set(exclude)
    order = {url: i for i, url in enumerate(urls)}
    return sorted(
        (url for url in urls if url not in excluded),
        key=lambda url: (loads.get(url, 0), order[url]),
    )


def shown(url: str) -> str:
    """A Janus URL for a log line: scheme, host and port only (no path, no query)."""
    scheme, _, rest = url.partition("://")
    host = rest.split("/", 1)[0].rsplit("@", 1)[-1]
    return f"{scheme}://{host}"


@dataclass(frozen=True)
class Instance:
    """One connected Janus: its URL, the session tavkit holds there, a handle for rooms."""

    url: str
    janus: JanusSession
    admin: VideoRoomHandle
    """The handle that creates and destroys rooms on this Janus."""


class Placements:
    """The connections to each Janus and the ``sfu_rooms`` table: where rooms go and are."""

    def __init__(self, urls: Sequence[str], *, api_secret: str | None, store: Store) -> None:
        if not urls:
            raise ValueError("placement needs at least one Janus URL")
        self.urls = tuple(urls)
        self._secret = api_secret
        self._store = store
        self._instances: dict[str, Instance] = {}
        self._connecting: dict[str, asyncio.Lock] = {url: asyncio.Lock() for url in self.urls}

    def secret_of(self, room: str) -> str:
        """The VideoRoom secret of ``room`` (:func:`room_secret` under the shared API secret)."""
        return room_secret(self._secret, room)

    # --- the instances ------------------------------------------------------------------

    async def connect(self, url: str) -> Instance:
        """The live session with Janus ``url``, connecting (again) if it has none.

        Raises :class:`JanusUnavailable` if it cannot be reached.
        """
        async with self._connecting[url]:
            instance = self._instances.get(url)
            if instance is not None and not instance.janus.closed.is_set():
                return instance
            janus = await JanusSession.connect(url, api_secret=self._secret)
            try:
                admin = await janus.attach_videoroom()
            except JanusError:
                await janus.close()
                raise
            instance = self._instances[url] = Instance(url, janus, admin)
            logger.info("SFU: connected to Janus %s", shown(url))
            return instance

    def connected(self) -> list[Instance]:
        """The instances with a live session now."""
        return [i for i in self._instances.values() if not i.janus.closed.is_set()]

    async def aclose(self) -> None:
        """Close every Janus session."""
        for instance in list(self._instances.values()):
            await instance.janus.close()
        self._instances.clear()

    # --- placing rooms ------------------------------------------------------------------

    async def place(self, room: str, *, exclude: Iterable[str] = ()) -> Instance:
        """The Janus for ``room``: where its row says, else the least loaded one reachable.

        The row says where only while that Janus is reachable and not in ``exclude``
        (the one that just died); otherwise the room is placed anew and its row moved.
        Raises :class:`JanusUnavailable` when no Janus can be reached.
        """
        excluded = set(exclude)
        current = await self.where(room)
        if current is not None and current in self.urls and current not in excluded:
            try:
                return await self.connect(current)
            except JanusUnavailable as exc:
                logger.warning("SFU: Janus %s of room %s: %s", shown(current), room, exc)
                excluded.add(current)
        loads = await self.loads()
        for url in choose(self.urls, loads, excluded):
            try:
                instance = await self.connect(url)
            except JanusUnavailable as exc:
                logger.warning("SFU: Janus %s unreachable: %s", shown(url), exc)
                continue
            placed = await self._record(room, url, excluded)
            if placed != url and placed in self.urls and placed not in excluded:
                return await self.connect(placed)  # another replica placed it first
            counts = {shown(u): n for u, n in loads.items()}
            logger.info("SFU: room %s placed on %s (members: %s)", room, shown(url), counts)
            return instance
        raise JanusUnavailable("no Janus can be reached")

    async def where(self, room: str) -> str | None:
        """The Janus URL the store has for ``room`` (None: not placed)."""

        async def body(session: AsyncSession, _: Outbox) -> str | None:
            row = await session.get(SfuRoomRow, uuid.UUID(room))
            return row.janus_url if row is not None else None

        return await transaction(self._store, "reading an SFU placement", body, readonly=True)

    async def loads(self) -> dict[str, int]:
        """Each Janus's members: open memberships of open sessions whose room is there."""

        async def body(session: AsyncSession, _: Outbox) -> dict[str, int]:
            query = (
                select(SfuRoomRow.janus_url, func.count(MemberRow.id))
                .join(SessionRow, SessionRow.id == SfuRoomRow.session_id)
                .outerjoin(
                    MemberRow,
                    (MemberRow.session_id == SfuRoomRow.session_id) & MemberRow.left_at.is_(None),
                )
                .where(SessionRow.closed_at.is_(None))
                .group_by(SfuRoomRow.janus_url)
            )
            return {url: int(count) for url, count in (await session.execute(query)).all()}

        return await transaction(self._store, "reading the SFU loads", body, readonly=True)

    async def _record(self, room: str, url: str, dead: set[str]) -> str:
        """Put ``room`` on ``url``; return where it is now.

        A row naming a Janus in ``dead`` (or one no longer configured) is moved to
        ``url``; a row naming another live one wins (another replica placed or moved the
        room first). Two replicas placing the same new room race on the primary key: the
        loser's transaction is retried, finds the winner's row and keeps it.
        """

        async def body(session: AsyncSession, _: Outbox) -> str:
            row = await session.get(SfuRoomRow, uuid.UUID(room))
            if row is None:
                session.add(SfuRoomRow(session_id=uuid.UUID(room), janus_url=url, placed_at=now))
                return url
            if row.janus_url not in self.urls or row.janus_url in dead:
                await session.execute(
                    update(SfuRoomRow)
                    .where(SfuRoomRow.session_id == row.session_id)
                    .values(janus_url=url, placed_at=now)
                )
                return url
            return row.janus_url

        now = time.time()
        return await transaction(self._store, "placing an SFU room", body)

    async def forget(self, room: str) -> None:
        """The room is destroyed (or its Janus is gone for good): delete its row."""

        async def body(session: AsyncSession, _: Outbox) -> None:
            await session.execute(
                delete(SfuRoomRow).where(SfuRoomRow.session_id == uuid.UUID(room))
            )

        await transaction(self._store, "forgetting an SFU room", body)

    # --- no ghosts ----------------------------------------------------------------------

    async def sweep(self) -> int:
        """Destroy the rooms of closed sessions and delete their rows; return how many.

        A Janus that cannot be reached keeps its rows for the next sweep (its rooms
        died with it if it restarted, and ``destroy`` then says 426, which is fine). A
        row naming a Janus no longer configured is deleted: nothing can reach it.
        """

        async def body(session: AsyncSession, _: Outbox) -> list[tuple[uuid.UUID, str]]:
            query = (
                select(SfuRoomRow.session_id, SfuRoomRow.janus_url)
                .join(SessionRow, SessionRow.id == SfuRoomRow.session_id)
                .where(SessionRow.closed_at.is_not(None))
            )
            return [(sid, url) for sid, url in (await session.execute(query)).all()]

        rows = await transaction(self._store, "finding closed SFU rooms", body, readonly=True)
        cleaned = 0
        for session_id, url in rows:
            room = str(session_id)
            if url in self.urls:
                try:
                    instance = await self.connect(url)
                    await instance.admin.destroy_room(room, secret=self.secret_of(room))
                    logger.info("SFU: room %s of a closed session destroyed", room)
                except JanusUnavailable:
                    continue
                except JanusError as exc:
                    if exc.janus_code != _NO_SUCH_ROOM:
                        logger.warning("SFU: room %s not destroyed: %s", room, exc.reason)
                        continue
            await self.forget(room)
            cleaned += 1
        return cleaned
