"""The webhook dispatcher: each app's journal, POSTed in order, signed, at least once.

An app with an endpoint (``PUT /v1/admin/webhooks``, or ``--webhook-url`` on a
single-app server) gets every journal entry (:mod:`tavkit.server.journal`) as one
``POST`` with the entry's wire object as its JSON body, headers ``Tavkit-Signature``
(:func:`tavkit.webhooks.sign`) and ``Tavkit-Event-Id`` (``<sdkAppId>-<id>``, the same
on every retry: receivers deduplicate on it).

How delivery stays ordered and at least once:

* **A position in the database.** ``webhook_endpoints.position`` is the last ``app_seq``
  delivered; an entry is sent only after the one before it was answered with a 2xx, and
  the position moves only then. A crash between the answer and the update sends that
  entry again after restart (at least once, never lost). Ids are the app's, gapless and
  committed in order, so ``app_seq`` order is also each session's order.
* **Retries.** A failure (no connection, a timeout, a non-2xx) keeps the position and
  schedules the same entry again after ``webhook_retry_base`` seconds, doubling up to
  ``webhook_retry_cap``, each delay taken at random between half and all of it (jitter,
  so many servers coming back do not retry in step). After ``webhook_give_up`` seconds of
  failing (24 h) the entry is dead: a ``webhook_dead`` row keeps its id and last error,
  and the next entry goes. The schedule is in the database too, so a restart keeps it.
* **One replica per app.** A lease on the endpoint row (``lease_owner``, ``lease_until``,
  renewed with every step) lets one replica deliver an app's entries at a time; every
  update also checks the position it started from, so a replay or another replica that
  took over after a lapsed lease stops this one instead of racing it.
* **Latency.** New entries are found by polling every ``webhook_poll_interval`` (0.5 s);
  a poll is one read that never waits for SQLite's writer. Replays wake it at once.

Each delivery is bounded by ``webhook_timeout`` (10 s) from connect to the status line;
the answer's body is not read. The secret is never logged, and neither is the URL's
path or credentials: log lines name the endpoint's scheme, host and port.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import random
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from types import TracebackType
from typing import Any, Final, Self

import httpx
from sqlalchemy import Update, func, insert, or_, select, update
from sqlalchemy.engine import CursorResult
from sqlalchemy.ext.asyncio import AsyncSession

from tavkit import __version__
from tavkit.client.api import plain_http_transport
from tavkit.errors import ServerCode, ServerError, TAvKitError
from tavkit.server.journal import JournalEntry, read_entries
from tavkit.server.settings import Settings, check_webhook_secret, check_webhook_url
from tavkit.server.store.db import Store
from tavkit.server.store.journal_models import JournalRow
from tavkit.server.store.models import AppRow
from tavkit.server.store.unit_of_work import Outbox, transaction
from tavkit.server.store.webhook_models import WebhookDeadRow, WebhookEndpointRow
from tavkit.webhooks import SIGNATURE_HEADER, sign

__all__ = [
    "EVENT_ID_HEADER",
    "DeadLetter",
    "Dispatcher",
    "EndpointState",
    "dead_letters",
    "endpoint_state",
    "replay",
    "retry_delay",
    "set_endpoint",
]

logger = logging.getLogger(__name__)

EVENT_ID_HEADER: Final = "Tavkit-Event-Id"
"""The idempotency id header: ``<sdkAppId>-<id>``."""
_BATCH: Final = 100
"""Entries read at a time for one app."""
_STOP_TIMEOUT: Final = 10.0
_ERROR_CHARS: Final = 500


def retry_delay(
    attempts: int, base: float, cap: float, *, jitter: Callable[[], float] = random.random
) -> float:
    """Seconds to wait after the ``attempts``-th failure: ``base`` doubled each time up to
    ``cap``, then a random 50-100 % of that (``jitter`` gives 0 <= x < 1)."""
    if attempts < 1:
        raise ValueError("attempts counts failures: 1 or more")
    full = min(cap, base * float(2 ** min(attempts - 1, 60)))
    return full * (0.5 + 0.5 * jitter())


def where(url: str) -> str:
    """``scheme://host:port`` of ``url``, for log lines (no path, query or credentials)."""
    try:
        parsed = httpx.URL(url)
    except (httpx.InvalidURL, TypeError):
        return "(unreadable URL)"
    port = f":{parsed.port}" if parsed.port else ""
    return f"{parsed.scheme}://{parsed.host}{port}"


@dataclass(frozen=True, slots=True)
class EndpointState:
    """An app's endpoint as ``GET /v1/admin/webhooks`` shows it (never the secret)."""

    sdk_app_id: int
    url: str
    messages: bool
    position: int
    """The id of the last entry delivered (or dead)."""
    last_event_id: int
    """The app's newest journal id; ``pending`` is the entries between."""
    pending: int
    dead: int
    attempts: int
    """Failed attempts at the next entry."""
    next_attempt_at: float | None
    last_error: str | None

    def to_wire(self) -> dict[str, Any]:
        """The JSON object of the admin route."""
        return {
            "sdkAppId": self.sdk_app_id,
            "url": self.url,
            "messages": self.messages,
            "position": self.position,
            "lastEventId": self.last_event_id,
            "pending": self.pending,
            "dead": self.dead,
            "attempts": self.attempts,
            "nextAttemptAt": self.next_attempt_at,
            "lastError": self.last_error,
        }


async def _state(s: AsyncSession, sdk_app_id: int) -> EndpointState | None:
    found = (
        await s.execute(
            select(WebhookEndpointRow, AppRow)
            .join(AppRow, AppRow.sdk_app_id == WebhookEndpointRow.sdk_app_id)
            .where(WebhookEndpointRow.sdk_app_id == sdk_app_id)
        )
    ).first()
    if found is None:
        return None
    row, app = found
    pending = await s.scalar(
        select(func.count())
        .select_from(JournalRow)
        .where(JournalRow.sdk_app_id == sdk_app_id, JournalRow.app_seq > row.position)
    )
    dead = await s.scalar(
        select(func.count())
        .select_from(WebhookDeadRow)
        .where(WebhookDeadRow.sdk_app_id == sdk_app_id)
    )
    return EndpointState(
        sdk_app_id,
        row.url,
        app.journal_messages,
        row.position,
        app.last_event_seq,
        pending or 0,
        dead or 0,
        row.attempts,
        row.next_attempt_at,
        row.last_error,
    )


async def endpoint_state(store: Store, sdk_app_id: int) -> EndpointState | None:
    """The app's endpoint and how far delivery got; None when it has none."""

    async def run(s: AsyncSession, _out: Outbox) -> EndpointState | None:
        return await _state(s, sdk_app_id)

    return await transaction(store, "reading the webhook endpoint", run, readonly=True)


@dataclass(frozen=True, slots=True)
class DeadLetter:
    """An entry delivery gave up on, as ``GET /v1/admin/webhooks/dead`` lists it."""

    event_id: int
    type: str | None
    """The entry's event type; None once retention removed the entry itself."""
    session_uuid: uuid.UUID | None
    attempts: int
    last_error: str
    died_at: float

    def to_wire(self) -> dict[str, Any]:
        """The JSON object of the admin route."""
        return {
            "eventId": self.event_id,
            "type": self.type,
            "roomUuid": None if self.session_uuid is None else str(self.session_uuid),
            "attempts": self.attempts,
            "lastError": self.last_error,
            "diedAt": self.died_at,
        }


async def dead_letters(store: Store, sdk_app_id: int, limit: int) -> list[DeadLetter]:
    """The app's newest ``limit`` dead letters, newest first, each with its entry's type."""

    async def run(s: AsyncSession, _out: Outbox) -> list[DeadLetter]:
        rows = await s.execute(
            select(WebhookDeadRow, JournalRow.type, JournalRow.session_id)
            .outerjoin(
                JournalRow,
                (JournalRow.sdk_app_id == WebhookDeadRow.sdk_app_id)
                & (JournalRow.app_seq == WebhookDeadRow.app_seq),
            )
            .where(WebhookDeadRow.sdk_app_id == sdk_app_id)
            .order_by(WebhookDeadRow.id.desc())
            .limit(limit)
        )
        return [
            DeadLetter(dead.app_seq, kind, session, dead.attempts, dead.last_error, dead.died_at)
            for dead, kind, session in rows
        ]

    return await transaction(store, "reading webhook dead letters", run, readonly=True)


async def set_endpoint(
    store: Store,
    sdk_app_id: int,
    url: str,
    secret: str,
    *,
    messages: bool | None,
    clock: Callable[[], float] = time.time,
) -> EndpointState:
    """Create or change the app's endpoint; ``messages`` None leaves that choice as it is.

    A new endpoint starts after the app's newest entry (what happened before it was
    configured is a replay away); a changed one keeps its position. Raises
    ``ValueError`` for a bad URL or secret.
    """
    check_webhook_url(url)
    check_webhook_secret(secret)

    async def run(s: AsyncSession, _out: Outbox) -> EndpointState:
        app = await s.get(AppRow, sdk_app_id)
        if app is None:
            raise ServerError(ServerCode.INVALID_PARAMETER, f"no app {sdk_app_id}")
        if messages is not None:
            app.journal_messages = messages
        row = await s.get(WebhookEndpointRow, sdk_app_id)
        if row is None:
            s.add(
                WebhookEndpointRow(
                    sdk_app_id=sdk_app_id,
                    url=url,
                    secret=secret,
                    position=app.last_event_seq,
                    attempts=0,
                    updated_at=clock(),
                )
            )
        else:
            row.url, row.secret, row.updated_at = url, secret, clock()
        await s.flush()
        state = await _state(s, sdk_app_id)
        assert state is not None
        return state

    return await transaction(store, "setting the webhook endpoint", run)


async def replay(
    store: Store,
    sdk_app_id: int,
    *,
    from_event: int | None = None,
    since: float | None = None,
    clock: Callable[[], float] = time.time,
) -> tuple[int, int]:
    """Deliver again from entry ``from_event`` (or the first at or after ``since``) on.

    Moves the endpoint's position back (or forward, past what is skipped) and clears its
    retry schedule. Returns (the first id, how many entries will be sent). Server 10004
    when the app has no endpoint.
    """
    if (from_event is None) == (since is None):
        raise ValueError("give from_event or since")

    async def run(s: AsyncSession, _out: Outbox) -> tuple[int, int]:
        row = await s.get(WebhookEndpointRow, sdk_app_id)
        if row is None:
            raise ServerError(ServerCode.INVALID_PARAMETER, "the app has no webhook endpoint")
        last = await s.scalar(select(AppRow.last_event_seq).where(AppRow.sdk_app_id == sdk_app_id))
        end = (last or 0) + 1  # the next id: a position past it would skip what comes
        start = from_event
        if start is None:
            start = await s.scalar(
                select(func.min(JournalRow.app_seq)).where(
                    JournalRow.sdk_app_id == sdk_app_id, JournalRow.at >= since
                )
            )
        start = min(max(start or end, 1), end)
        count = await s.scalar(
            select(func.count())
            .select_from(JournalRow)
            .where(JournalRow.sdk_app_id == sdk_app_id, JournalRow.app_seq >= start)
        )
        row.position = start - 1
        row.attempts, row.failing_since, row.next_attempt_at, row.last_error = 0, None, None, None
        row.updated_at = clock()
        return start, count or 0

    return await transaction(store, "replaying webhooks", run)


async def configure_from_settings(store: Store, settings: Settings) -> None:
    """Set the single app's endpoint from ``webhook_url`` and ``webhook_secret``, if given."""
    if settings.webhook_url is None or settings.webhook_secret is None:
        return
    if len(settings.apps) != 1:
        raise ValueError("webhook_url is for a server with exactly one app")
    app = settings.apps[0].sdk_app_id
    await set_endpoint(store, app, settings.webhook_url, settings.webhook_secret, messages=None)
    logger.info("webhooks of app %d go to %s", app, where(settings.webhook_url))


def _applied(result: Any) -> bool:
    """Whether an ``UPDATE`` changed its one row."""
    assert isinstance(result, CursorResult)
    return result.rowcount == 1


@dataclass(frozen=True, slots=True)
class _Target:
    """An endpoint with entries to deliver, as one pass read it."""

    sdk_app_id: int
    url: str
    secret: str
    position: int
    attempts: int
    failing_since: float | None


class Dispatcher:
    """Delivers every app's journal to its endpoint while entered (the app's lifespan)."""

    def __init__(
        self,
        store: Store,
        settings: Settings,
        *,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._store = store
        self._owner = settings.replica_name
        self._timeout = settings.webhook_timeout
        self._base = settings.webhook_retry_base
        self._cap = settings.webhook_retry_cap
        self._give_up = settings.webhook_give_up
        self._poll = settings.webhook_poll_interval
        # Renewed with every delivery, so it need only outlast one (the timeout) with room
        # to spare; it is how long a dead replica's endpoints wait for another (30 s by
        # default).
        self._lease = max(5.0, 3 * settings.webhook_timeout)
        self._clock = clock
        self._wake = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._clients: dict[bool, httpx.AsyncClient] = {}  # by "the URL is plain http"

    async def __aenter__(self) -> Self:
        self._task = asyncio.create_task(self._run(), name="tavkit-webhooks")
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError, TimeoutError):
                await asyncio.wait_for(task, _STOP_TIMEOUT)
        clients, self._clients = list(self._clients.values()), {}
        for client in clients:
            await client.aclose()
        with contextlib.suppress(TAvKitError):
            await self._release()

    def wake(self) -> None:
        """Look for work now rather than at the next poll (after a replay, say)."""
        self._wake.set()

    async def _run(self) -> None:
        while True:
            try:
                await self._pass()
            except TAvKitError as exc:
                logger.warning("webhook pass failed: %s", exc)
            except Exception:
                # A bug must not end delivery for the life of the process: log it, go on.
                logger.exception("webhook pass crashed")
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), self._poll)
            self._wake.clear()

    async def _pass(self) -> None:
        """Claim every endpoint with due entries and deliver them, apps side by side."""
        now = self._clock()

        async def due(s: AsyncSession, _out: Outbox) -> list[_Target]:
            rows = await s.scalars(
                select(WebhookEndpointRow)
                .join(AppRow, AppRow.sdk_app_id == WebhookEndpointRow.sdk_app_id)
                .where(
                    AppRow.last_event_seq > WebhookEndpointRow.position,
                    or_(
                        WebhookEndpointRow.next_attempt_at.is_(None),
                        WebhookEndpointRow.next_attempt_at <= now,
                    ),
                    self._free(now),
                )
            )
            return [
                _Target(r.sdk_app_id, r.url, r.secret, r.position, r.attempts, r.failing_since)
                for r in rows
            ]

        targets = await transaction(self._store, "finding webhooks to send", due, readonly=True)
        claimed = [t for t in targets if await self._claim(t, now)]
        # Every app's drain ends before the next pass, so one app is never drained twice
        # at once; one failing (the database) does not stop the others.
        outcomes = await asyncio.gather(*(self._drain(t) for t in claimed), return_exceptions=True)
        for target, outcome in zip(claimed, outcomes, strict=True):
            if isinstance(outcome, TAvKitError):
                logger.warning("webhooks of app %d: %s", target.sdk_app_id, outcome)
            elif isinstance(outcome, Exception):
                logger.error("webhooks of app %d crashed", target.sdk_app_id, exc_info=outcome)

    def _free(self, now: float) -> Any:
        """The endpoint rows this replica may deliver for: unleased, its own, or lapsed."""
        return or_(
            WebhookEndpointRow.lease_owner.is_(None),
            WebhookEndpointRow.lease_owner == self._owner,
            WebhookEndpointRow.lease_until < now,
        )

    def _update(self, target: _Target, at: int, now: float, **values: Any) -> Update:
        """The endpoint's update, if its position is still ``at`` and the lease free or ours;
        it renews the lease."""
        return (
            update(WebhookEndpointRow)
            .where(
                WebhookEndpointRow.sdk_app_id == target.sdk_app_id,
                WebhookEndpointRow.position == at,
                self._free(now),
            )
            .values(lease_owner=self._owner, lease_until=now + self._lease, **values)
            .execution_options(synchronize_session=False)
        )

    async def _step(self, action: str, target: _Target, at: int, **values: Any) -> bool:
        """Apply :meth:`_update`; whether it applied (False: replayed, or not ours)."""

        async def run(s: AsyncSession, _out: Outbox) -> bool:
            return _applied(await s.execute(self._update(target, at, self._clock(), **values)))

        return await transaction(self._store, action, run)

    async def _claim(self, target: _Target, now: float) -> bool:
        return await self._step("claiming webhooks", target, target.position, updated_at=now)

    async def _release(self) -> None:
        """Hand this replica's leases back, so a restart or another replica goes on at once."""

        async def run(s: AsyncSession, _out: Outbox) -> None:
            await s.execute(
                update(WebhookEndpointRow)
                .where(WebhookEndpointRow.lease_owner == self._owner)
                .values(lease_owner=None, lease_until=None)
            )

        await transaction(self._store, "releasing webhook leases", run)

    async def _drain(self, target: _Target) -> None:
        """Deliver the app's entries after its position until none is left or one fails."""
        position, attempts, failing_since = target.position, target.attempts, target.failing_since
        while True:

            async def read(
                s: AsyncSession, _out: Outbox, after: int = position
            ) -> list[JournalEntry]:
                return await read_entries(s, target.sdk_app_id, after=after, limit=_BATCH)

            entries = await transaction(self._store, "reading the journal", read, readonly=True)
            if not entries:
                return
            for entry in entries:
                error = await self._post(target, entry)
                if error is not None:
                    await self._failed(target, position, entry, error, attempts, failing_since)
                    return
                moved = await self._step(
                    "advancing webhooks",
                    target,
                    position,
                    position=entry.id,
                    attempts=0,
                    failing_since=None,
                    next_attempt_at=None,
                    last_error=None,
                    updated_at=self._clock(),
                )
                if not moved:
                    return  # replayed, or another replica took over: the next pass rereads
                position, attempts, failing_since = entry.id, 0, None

    def _client_for(self, url: str) -> httpx.AsyncClient:
        """The HTTP client for ``url``'s scheme, made on first use.

        A certificate-verifying client loads the CA bundle as it is made (60-100 ms of
        CPU on the server's loop, in every start-up when made eagerly); an endpoint on
        plain ``http://`` (a test's receiver, a sidecar) never needs it.
        """
        plain = url.lower().startswith("http://")
        client = self._clients.get(plain)
        if client is None:
            client = self._clients[plain] = httpx.AsyncClient(
                timeout=httpx.Timeout(self._timeout),
                follow_redirects=False,
                headers={"User-Agent": f"tavkit/{__version__}"},
                transport=plain_http_transport(url),
            )
        return client

    async def _post(self, target: _Target, entry: JournalEntry) -> str | None:
        """POST one entry; None on a 2xx, else what went wrong (for ``last_error``)."""
        body = json.dumps(entry.to_wire(), separators=(",", ":"), allow_nan=False).encode()
        headers = {
            "Content-Type": "application/json",
            SIGNATURE_HEADER: sign(body, target.secret, int(self._clock())),
            EVENT_ID_HEADER: f"{target.sdk_app_id}-{entry.id}",
        }
        try:
            async with asyncio.timeout(self._timeout):
                async with self._client_for(target.url).stream(
                    "POST", target.url, content=body, headers=headers
                ) as response:
                    status = response.status_code
        except TimeoutError:
            return f"no answer within {self._timeout:g} s"
        except httpx.HTTPError as exc:
            # httpx's messages name the failure, not the URL; cut them short all the same.
            return f"{type(exc).__name__}: {exc}"[:_ERROR_CHARS]
        except httpx.InvalidURL:
            return "the URL cannot be used"
        if 200 <= status < 300:
            return None
        return f"HTTP {status}"

    async def _failed(
        self,
        target: _Target,
        position: int,
        entry: JournalEntry,
        error: str,
        attempts: int,
        failing_since: float | None,
    ) -> None:
        """Schedule the entry's next attempt, or give up on it past the give-up time."""
        now = self._clock()
        attempts += 1
        since = failing_since if failing_since is not None else now
        app = target.sdk_app_id
        if now - since >= self._give_up:
            logger.warning(
                "webhook %d-%d to %s is dead after %d attempts: %s",
                app,
                entry.id,
                where(target.url),
                attempts,
                error,
            )
            await self._bury(target, position, entry, error, attempts)
            return
        delay = retry_delay(attempts, self._base, self._cap)
        logger.info(
            "webhook %d-%d to %s failed (attempt %d, next in %.1f s): %s",
            app,
            entry.id,
            where(target.url),
            attempts,
            delay,
            error,
        )
        await self._step(
            "scheduling a webhook retry",
            target,
            position,
            attempts=attempts,
            failing_since=since,
            next_attempt_at=now + delay,
            last_error=error,
            updated_at=now,
        )

    async def _bury(
        self, target: _Target, position: int, entry: JournalEntry, error: str, attempts: int
    ) -> None:
        """Keep a dead letter for ``entry`` and move past it, in one transaction."""

        async def run(s: AsyncSession, _out: Outbox) -> None:
            now = self._clock()
            moved = self._update(
                target,
                position,
                now,
                position=entry.id,
                attempts=0,
                failing_since=None,
                next_attempt_at=None,
                last_error=error,
                updated_at=now,
            )
            if _applied(await s.execute(moved)):
                await s.execute(
                    insert(WebhookDeadRow).values(
                        sdk_app_id=target.sdk_app_id,
                        app_seq=entry.id,
                        attempts=attempts,
                        last_error=error,
                        died_at=now,
                    )
                )

        await transaction(self._store, "giving up on a webhook", run)
