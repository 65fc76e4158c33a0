"""Retention: what is older than N days goes, in batches; ``tavkit gc`` and ``serve``'s task.

What is collected, and when a thing is "older than N days" (the cutoff is now minus
N days):

=================================  ===================================================
kind                               goes when
=================================  ===================================================
in-call messages                   their session closed before the cutoff
journal events (webhook feed)      their session closed before the cutoff (they may
                                   carry the session's messages)
recordings: rows and files         their session closed before the cutoff; the whole
                                   ``<data_dir>/recordings/<uuid>/`` goes with them
                                   (composites and leftovers of a crash included)
client logs, quality samples       the row itself was received before the cutoff
                                   (``received_at``, the server's clock)
webhook dead letters               the delivery was given up before the cutoff
                                   (``died_at``, the server's clock)
=================================  ===================================================

Messages, journal events and recordings are a call's record, so they go whole, by the
session's close time, and an open session is never touched however old it is. Logs and quality
samples are telemetry, taken for at most five minutes after a session closes
(:mod:`tavkit.server.logs.service`), and go row by row by the server's own clock, so
a week-long room does not keep a week of them and a client's clock cannot keep them.
A dead letter (a webhook delivery given up on, :mod:`tavkit.server.webhooks`) is an
operator's to-do, not a call's record: it goes by the time it died.
**Per app.** An app's own ``retentionDays`` (the apps file) replaces the server's for
its sessions and their logs; ``0`` keeps that app's data forever even when the server
has a retention. Each row is judged by its session's app, so one pass serves them all.

Kept: sessions, memberships and their event lines (the call ledger: who was in which
call, when), and each app's settings.

How, so a server that is serving does not notice:

* **Keyset scans in read transactions.** Each table is read in primary-key pages of
  :data:`BATCH` rows (read-only: on SQLite they never queue behind the writer), and
  each page's old ids are deleted in one short write transaction, so a writer waits
  for one batch at most. Rows are inserted in time order, so a scan stops at the first
  row newer than the cutoff plus :data:`SLACK` (for clock steps and long
  transactions): a pass reads what it deletes plus about an hour of rows, never the
  whole table.
* **Rows before files.** A recording's row is deleted, then its file: a crash in
  between leaves a file with no row, which the next pass removes with its session's
  directory, never a row whose file is gone.
* **A dry run** does the same scans and lists what would go; it deletes nothing.

Replicas may collect at the same time: deleting by id is idempotent, and each counts
only the rows its own statements removed.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import time
import uuid
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from types import TracebackType
from typing import Any, Final, Self

from sqlalchemy import ColumnElement, Row, Select, and_, delete, false, or_, select
from sqlalchemy.ext.asyncio import AsyncSession

from tavkit.errors import TAvKitError
from tavkit.server.store.db import Store
from tavkit.server.store.journal_models import JournalRow
from tavkit.server.store.logs_models import ClientLogRow, QualitySampleRow
from tavkit.server.store.models import MessageRow, SessionRow
from tavkit.server.store.recording_models import RecordingRow
from tavkit.server.store.unit_of_work import Outbox, transaction
from tavkit.server.store.webhook_models import WebhookDeadRow

__all__ = ["BATCH", "DAY", "SLACK", "Cutoffs", "GcReport", "RetentionTask", "collect"]

_Swept = MessageRow | JournalRow | ClientLogRow | QualitySampleRow | WebhookDeadRow
"""The tables collected row by row (recordings go with their files)."""

logger = logging.getLogger(__name__)

DAY: Final = 86400.0
BATCH: Final = 500
"""Rows read per page and deleted per transaction."""
SLACK: Final = 3600.0
"""How far past the cutoff a scan reads before it trusts that the rest is newer."""
RECORDINGS_DIR: Final = "recordings"
_STOP_TIMEOUT: Final = 10.0

_Query = Select[*tuple[Any, ...]]


@dataclass(frozen=True)
class Cutoffs:
    """When things become old: the server's cutoff, and apps' own (None: kept forever)."""

    default: float | None
    """Unix time for apps without their own retention; None when the server keeps all."""
    by_app: Mapping[int, float | None] = field(default_factory=dict)

    @classmethod
    def at(
        cls, now: float, retention_days: float | None, app_retention: Mapping[int, float]
    ) -> Cutoffs:
        """The cutoffs ``now``; ``app_retention`` maps sdkAppId to days (0: keep forever)."""
        for days in (retention_days, *app_retention.values()):
            if days is not None and not (days >= 0 and days == days):
                raise ValueError(f"retention days must be 0 or more, not {days}")
        if retention_days is not None and retention_days <= 0:
            raise ValueError(f"retention_days must be positive, not {retention_days}")
        return cls(
            None if retention_days is None else now - retention_days * DAY,
            {app: (now - days * DAY) if days else None for app, days in app_retention.items()},
        )

    def of(self, sdk_app_id: int) -> float | None:
        """The cutoff of one app's rows."""
        return self.by_app.get(sdk_app_id, self.default)

    @property
    def latest(self) -> float | None:
        """The newest cutoff of all: a scan past it (plus :data:`SLACK`) can stop."""
        found = [c for c in (self.default, *self.by_app.values()) if c is not None]
        return max(found) if found else None

    def session_is_old(self) -> ColumnElement[bool]:
        """SQL: the session closed before its app's cutoff."""
        closed = SessionRow.closed_at.is_not(None)
        terms = [
            and_(SessionRow.sdk_app_id == app, SessionRow.closed_at < cutoff)
            for app, cutoff in self.by_app.items()
            if cutoff is not None
        ]
        if self.default is not None:
            others = SessionRow.closed_at < self.default
            if self.by_app:
                others = and_(SessionRow.sdk_app_id.not_in(list(self.by_app)), others)
            terms.append(others)
        return and_(closed, or_(*terms)) if terms else false()

    def row_is_old(self, sdk_app_id: int, when: float | None) -> bool:
        """Whether a row of ``sdk_app_id`` dated ``when`` is past its app's cutoff."""
        cutoff = self.of(sdk_app_id)
        return cutoff is not None and when is not None and when < cutoff


@dataclass
class GcReport:
    """What one collection deleted (or, in a dry run, would delete)."""

    cutoff: float
    """Unix time: what is older than this goes (the server's cutoff, else the newest of
    the apps' own; ``app_cutoffs`` has those)."""
    dry_run: bool
    messages: int = 0
    journal: int = 0
    """Journal events (:mod:`tavkit.server.journal`)."""
    client_logs: int = 0
    quality_samples: int = 0
    recordings: int = 0
    """Recording rows."""
    dead_letters: int = 0
    """Webhook deliveries given up on (:class:`WebhookDeadRow`)."""
    files: list[str] = field(default_factory=list)
    """Files under the data directory (POSIX paths relative to it), sorted."""
    bytes: int = 0
    """The files' total size."""
    failed: list[str] = field(default_factory=list)
    """Files that could not be removed, each with the reason."""
    app_cutoffs: dict[int, float | None] = field(default_factory=dict)
    """Apps with a retention of their own: their cutoff (None: kept forever)."""

    @property
    def rows(self) -> int:
        """Rows of every kind."""
        return (
            self.messages
            + self.journal
            + self.client_logs
            + self.quality_samples
            + self.recordings
            + self.dead_letters
        )

    def to_json(self) -> dict[str, Any]:
        """The report as ``tavkit gc --json`` prints it."""
        return {
            "cutoff": self.cutoff,
            "dryRun": self.dry_run,
            "messages": self.messages,
            "journal": self.journal,
            "clientLogs": self.client_logs,
            "qualitySamples": self.quality_samples,
            "recordings": self.recordings,
            "deadLetters": self.dead_letters,
            "files": list(self.files),
            "bytes": self.bytes,
            "failed": list(self.failed),
            "appCutoffs": {str(app): cutoff for app, cutoff in self.app_cutoffs.items()},
        }


async def collect(
    store: Store,
    data_dir: Path,
    *,
    retention_days: float | None,
    app_retention: Mapping[int, float] | None = None,
    now: float | None = None,
    dry_run: bool = False,
    batch: int = BATCH,
) -> GcReport:
    """Delete (or with ``dry_run`` only count) what is older than ``retention_days``.

    ``app_retention`` maps an sdkAppId to that app's own days (0: keep forever); None
    for ``retention_days`` keeps the other apps' data. Raises server 10006 when the
    database fails; files that cannot be removed are reported in
    :attr:`GcReport.failed`, not raised.
    """
    if batch < 1:
        raise ValueError("batch must be at least 1")
    cutoffs = Cutoffs.at(time.time() if now is None else now, retention_days, app_retention or {})
    shown = cutoffs.default if cutoffs.default is not None else cutoffs.latest
    report = GcReport(cutoff=shown or 0.0, dry_run=dry_run, app_cutoffs=dict(cutoffs.by_app))
    if cutoffs.latest is None:
        return report  # nothing is ever old
    sweep = _Sweep(store, Path(data_dir), cutoffs, dry_run, batch)
    report.messages = await sweep.messages()
    report.journal = await sweep.journal()
    report.client_logs = await sweep.by_own_time(ClientLogRow, "client logs")
    report.quality_samples = await sweep.by_own_time(QualitySampleRow, "quality samples")
    report.recordings = await sweep.recordings()
    report.dead_letters = await sweep.dead_letters()
    await sweep.directories()
    report.files = sorted(sweep.files)
    report.bytes = sum(sweep.files.values())
    report.failed = sweep.failed
    return report


class _Sweep:
    """One collection's scans; ``files`` maps each file that goes to its size."""

    def __init__(
        self, store: Store, data_dir: Path, cutoffs: Cutoffs, dry_run: bool, batch: int
    ) -> None:
        self.store = store
        self.data_dir = data_dir
        self.cutoffs = cutoffs
        latest = cutoffs.latest
        assert latest is not None, "a sweep needs a cutoff"
        self.latest = latest
        self.dry_run = dry_run
        self.batch = batch
        self.files: dict[str, int] = {}
        self.failed: list[str] = []

    def _closed_before_cutoff(self) -> ColumnElement[bool]:
        return self.cutoffs.session_is_old()

    # -- rows --------------------------------------------------------------------------

    async def messages(self) -> int:
        """Messages of sessions closed before the cutoff."""
        return await self.by_session(MessageRow, "in-call messages")

    async def journal(self) -> int:
        """Journal events of sessions closed before the cutoff."""
        return await self.by_session(JournalRow, "journal events")

    async def by_session(self, table: type[MessageRow | JournalRow], what: str) -> int:
        """Rows of ``table`` whose session closed before the cutoff."""
        written = MessageRow.sent_at if table is MessageRow else JournalRow.at

        def page(after: int | None) -> _Query:
            query = select(
                table.id, written.label("written"), SessionRow.closed_at, SessionRow.sdk_app_id
            ).join(SessionRow, SessionRow.id == table.session_id)
            if after is not None:
                query = query.where(table.id > after)
            return query.order_by(table.id).limit(self.batch)

        def old(row: Row[Any]) -> bool:
            return self.cutoffs.row_is_old(row.sdk_app_id, row.closed_at)

        def past(row: Row[Any]) -> bool:
            # A session closed before the cutoff wrote nothing after it.
            return bool(row.written >= self.latest + SLACK)

        return await self._scan(table, what, page, old, past)

    async def by_own_time(self, table: type[ClientLogRow | QualitySampleRow], what: str) -> int:
        """Rows of ``table`` received before the cutoff."""

        def page(after: int | None) -> _Query:
            query = select(table.id, table.received_at, SessionRow.sdk_app_id).join(
                SessionRow, SessionRow.id == table.session_id
            )
            if after is not None:
                query = query.where(table.id > after)
            return query.order_by(table.id).limit(self.batch)

        def old(row: Row[Any]) -> bool:
            return self.cutoffs.row_is_old(row.sdk_app_id, row.received_at)

        def past(row: Row[Any]) -> bool:
            return bool(row.received_at >= self.latest + SLACK)

        return await self._scan(table, what, page, old, past)

    async def dead_letters(self) -> int:
        """Webhook deliveries given up on before the cutoff."""
        table = WebhookDeadRow

        def page(after: int | None) -> _Query:
            query = select(table.id, table.died_at, table.sdk_app_id)
            if after is not None:
                query = query.where(table.id > after)
            return query.order_by(table.id).limit(self.batch)

        def old(row: Row[Any]) -> bool:
            return self.cutoffs.row_is_old(row.sdk_app_id, row.died_at)

        def past(row: Row[Any]) -> bool:
            return bool(row.died_at >= self.latest + SLACK)

        return await self._scan(table, "webhook dead letters", page, old, past)

    async def _scan(
        self,
        table: type[_Swept],
        what: str,
        page: Callable[[int | None], _Query],
        old: Callable[[Row[Any]], bool],
        past: Callable[[Row[Any]], bool],
    ) -> int:
        """Walk ``table`` in id order, deleting each page's ``old`` rows; stop at ``past``."""
        count = 0
        after: int | None = None
        while True:
            query = page(after)

            async def read(s: AsyncSession, _out: Outbox, query: _Query = query) -> list[Any]:
                return list(await s.execute(query))

            rows = await transaction(self.store, f"reading old {what}", read, readonly=True)
            if not rows:
                return count
            ids = [row.id for row in rows if old(row)]
            if ids:
                count += len(ids) if self.dry_run else await self._delete(table, ids, what)
            if len(rows) < self.batch or any(past(row) for row in rows):
                return count
            after = rows[-1].id
            await asyncio.sleep(0)  # let the server's own writers in between batches

    async def _delete(
        self,
        table: type[
            MessageRow
            | JournalRow
            | ClientLogRow
            | QualitySampleRow
            | RecordingRow
            | WebhookDeadRow
        ],
        ids: Sequence[Any],
        what: str,
    ) -> int:
        async def run(s: AsyncSession, _out: Outbox) -> int:
            result = await s.execute(delete(table).where(table.id.in_(ids)))
            return int(getattr(result, "rowcount", 0) or 0)

        return await transaction(self.store, f"deleting old {what}", run)

    # -- recordings --------------------------------------------------------------------

    async def recordings(self) -> int:
        """Recording rows of sessions closed before the cutoff, then their files."""
        count = 0
        after: uuid.UUID | None = None
        while True:
            query = (
                select(RecordingRow.id, RecordingRow.path)
                .join(SessionRow, SessionRow.id == RecordingRow.session_id)
                .where(self._closed_before_cutoff())
            )
            if after is not None:
                query = query.where(RecordingRow.id > after)
            query = query.order_by(RecordingRow.id).limit(self.batch)

            async def read(s: AsyncSession, _out: Outbox, query: _Query = query) -> list[Any]:
                return list(await s.execute(query))

            rows = await transaction(self.store, "reading old recordings", read, readonly=True)
            if not rows:
                return count
            if self.dry_run:
                count += len(rows)
            else:
                count += await self._delete(RecordingRow, [row.id for row in rows], "recordings")
            paths = [self._inside(row.path) for row in rows]
            await asyncio.to_thread(self._remove, [path for path in paths if path is not None])
            if len(rows) < self.batch:
                return count
            after = rows[-1].id

    async def directories(self) -> None:
        """``recordings/<uuid>/`` of every session closed before the cutoff, whole."""
        root = self.data_dir / RECORDINGS_DIR
        names = await asyncio.to_thread(_session_dirs, root)
        for start in range(0, len(names), self.batch):
            chunk = names[start : start + self.batch]
            query = select(SessionRow.id).where(
                SessionRow.id.in_(list(chunk)), self._closed_before_cutoff()
            )

            async def read(s: AsyncSession, _out: Outbox, query: _Query = query) -> list[Any]:
                return list(await s.scalars(query))

            old = await transaction(self.store, "reading old sessions", read, readonly=True)
            for session_id in old:
                await asyncio.to_thread(self._remove_tree, root / str(session_id))

    def _inside(self, relative: str) -> Path | None:
        """``relative`` under the data directory's recordings, or None (never outside it)."""
        parts = PurePosixPath(relative).parts
        if (
            len(parts) < 2
            or parts[0] != RECORDINGS_DIR
            or ".." in parts
            or relative.startswith("/")
        ):
            logger.warning(
                "retention: not touching recording file %r (outside recordings/)", relative
            )
            return None
        return self.data_dir.joinpath(*parts)

    def _remove(self, paths: list[Path]) -> None:
        """Remove (or in a dry run list) each existing file; runs in a thread."""
        for path in paths:
            try:
                info = path.lstat()
            except FileNotFoundError:
                continue
            except OSError as exc:
                self.failed.append(f"{self._name(path)}: {exc.strerror or exc}")
                continue
            name = self._name(path)
            if name in self.files:
                continue
            if not self.dry_run:
                try:
                    path.unlink()
                except FileNotFoundError:
                    continue
                except OSError as exc:
                    self.failed.append(f"{name}: {exc.strerror or exc}")
                    continue
            self.files[name] = info.st_size

    def _remove_tree(self, directory: Path) -> None:
        """Remove everything under ``directory`` and it; never follows a symlink."""
        try:
            entries = list(os.scandir(directory))
        except FileNotFoundError:
            return
        except OSError as exc:
            self.failed.append(f"{self._name(directory)}: {exc.strerror or exc}")
            return
        for entry in entries:
            path = Path(entry.path)
            if entry.is_dir(follow_symlinks=False):
                self._remove_tree(path)
            else:
                self._remove([path])
        if self.dry_run:
            return
        try:
            directory.rmdir()
        except FileNotFoundError:
            pass
        except OSError as exc:
            self.failed.append(f"{self._name(directory)}: {exc.strerror or exc}")

    def _name(self, path: Path) -> str:
        try:
            return path.relative_to(self.data_dir).as_posix()
        except ValueError:
            return str(path)


def _session_dirs(root: Path) -> list[uuid.UUID]:
    """The session UUIDs that have a directory under ``root`` (others are left alone)."""
    try:
        entries = list(os.scandir(root))
    except FileNotFoundError:
        return []
    found = []
    for entry in entries:
        if not entry.is_dir(follow_symlinks=False):
            continue
        try:
            parsed = uuid.UUID(entry.name)
        except ValueError:
            continue
        if str(parsed) == entry.name:
            found.append(parsed)
    return sorted(found)


class RetentionTask:
    """Runs :func:`collect` now and then every ``interval`` seconds while entered.

    The app's lifespan owns it (``tavkit serve --retention-days N``). A failing pass
    (the database is down) is logged and the next one tries again.
    """

    def __init__(
        self,
        store: Store,
        data_dir: Path,
        *,
        retention_days: float | None,
        interval: float,
        app_retention: Mapping[int, float] | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        if interval <= 0:
            raise ValueError("the retention interval must be positive")
        self._store = store
        self._data_dir = data_dir
        self._days = retention_days
        self._app_days = dict(app_retention or {})
        self._interval = interval
        self._clock = clock
        self._task: asyncio.Task[None] | None = None
        self.passes = 0
        """How many passes have finished, failed ones included (for tests)."""

    async def __aenter__(self) -> Self:
        self._task = asyncio.create_task(self._run(), name="tavkit-retention")
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        task, self._task = self._task, None
        if task is None:
            return
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError, TimeoutError):
            await asyncio.wait_for(task, _STOP_TIMEOUT)

    async def _run(self) -> None:
        while True:
            await self._pass()
            await asyncio.sleep(self._interval)

    async def _pass(self) -> None:
        try:
            report = await collect(
                self._store,
                self._data_dir,
                retention_days=self._days,
                app_retention=self._app_days,
                now=self._clock(),
            )
        except TAvKitError as exc:
            logger.warning("retention pass failed: %s", exc)
        except Exception:
            # A bug must not end retention for the life of the process: log it, go on.
            logger.exception("retention pass crashed")
        else:
            if report.rows or report.files or report.failed:
                logger.info(
                    "retention: deleted %d message(s), %d log line(s), %d quality sample(s), "
                    "%d recording(s), %d file(s) (%d bytes); %d file(s) could not be removed",
                    report.messages,
                    report.client_logs,
                    report.quality_samples,
                    report.recordings,
                    len(report.files),
                    report.bytes,
                    len(report.failed),
                )
        finally:
            self.passes += 1
