"""Retention: ``tavkit gc`` (dry run, then for real), the library function on both databases,
and ``tavkit serve --retention-days`` collecting on its own.

Every test builds the same data: a session closed ten days ago (everything of it is
old), a session opened twenty days ago and still open (its messages, journal events and
recording are never touched, its old log lines go by their own time), a session closed a day
ago (nothing goes), and files the collector must leave alone. With a retention of
five days, exactly :data:`GONE` goes.
"""

from __future__ import annotations

import json
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from tavkit.server.retention import DAY, collect
from tavkit.server.settings import Settings, read_apps_file
from tavkit.server.store.db import Store
from tavkit.server.store.journal_models import JournalRow
from tavkit.server.store.logs_models import ClientLogRow, QualitySampleRow
from tavkit.server.store.models import AppRow, MessageRow, SessionRow
from tavkit.server.store.recording_models import RecordingRow
from tavkit.server.store.unit_of_work import Outbox, transaction
from tavkit.server.store.webhook_models import WebhookDeadRow

from ._util import APP, eventually
from .test_cli import tavkit

if TYPE_CHECKING:
    from conftest import ServerFactory

RETENTION = 5
"""Days kept in every test here."""
GONE = {
    "messages": 3,
    "journal": 2,
    "clientLogs": 5,
    "qualitySamples": 2,
    "recordings": 2,
    "deadLetters": 1,
}
"""What a collection with :data:`RETENTION` deletes from :func:`populate`'s data."""
CLI_TIMEOUT = 120


@dataclass
class Populated:
    """What :func:`populate` made, and what must survive a collection."""

    old: uuid.UUID
    open_old: uuid.UUID
    recent: uuid.UUID
    gone_files: list[str]
    kept_files: list[str]
    kept: dict[str, set[Any]] = field(default_factory=dict)
    """Per table, the ids that must remain."""


async def populate(store: Store, data_dir: Path, now: float) -> Populated:
    """Sessions, messages, logs, quality samples, recordings and files, in time order."""
    old, open_old, recent = uuid.uuid4(), uuid.uuid4(), uuid.uuid4()
    stray = uuid.uuid4()  # a directory with no session in the database
    d = DAY
    sessions = [
        SessionRow(id=open_old, sdk_app_id=APP, room_id=2, opened_at=now - 20 * d),
        SessionRow(
            id=old,
            sdk_app_id=APP,
            room_id=1,
            opened_at=now - 10 * d - 3600,
            closed_at=now - 10 * d,
            close_reason="empty",
        ),
        SessionRow(
            id=recent,
            sdk_app_id=APP,
            room_id=3,
            opened_at=now - d - 3600,
            closed_at=now - d,
            close_reason="empty",
        ),
    ]

    def message(session: uuid.UUID, seq: int, at: float) -> MessageRow:
        return MessageRow(
            session_id=session,
            seq=seq,
            sender="alice",
            kind="text",
            body='{"text": "hi"}',
            client_msg_id=f"m{seq}",
            sent_at=at,
        )

    def log(session: uuid.UUID, at: float) -> ClientLogRow:
        return ClientLogRow(
            session_id=session, user_id="alice", at=at, received_at=at, level="info", event="x"
        )

    def sample(session: uuid.UUID, at: float) -> QualitySampleRow:
        return QualitySampleRow(
            session_id=session, user_id="alice", peer_id="bob", at=at, received_at=at
        )

    seqs = iter(range(1, 100))

    def event(session: uuid.UUID, kind: str, at: float) -> JournalRow:
        seq = next(seqs)
        return JournalRow(
            sdk_app_id=APP,
            app_seq=seq,
            session_id=session,
            session_seq=seq,
            room_id=1,
            type=kind,
            at=at,
            data='{"message": {"text": "hi"}}' if kind == "message.created" else "{}",
        )

    def recording(session: uuid.UUID, user: str, at: float, status: str) -> RecordingRow:
        return RecordingRow(
            id=uuid.uuid4(),
            session_id=session,
            user_id=user,
            stint=1,
            path=f"recordings/{session}/{user}-1.mkv",
            started_at=at,
            ended_at=None if status == "recording" else at + 60,
            status=status,
        )

    # Each table in time order, as a live server would have written it.
    messages = [
        message(open_old, 1, now - 20 * d + 10),
        message(open_old, 2, now - 20 * d + 20),
        *(message(old, seq, now - 10 * d - 100 + seq) for seq in (1, 2, 3)),
        message(recent, 1, now - d - 100),
        message(recent, 2, now - d - 50),
    ]
    logs = [
        log(open_old, now - 20 * d + 10),
        log(open_old, now - 20 * d + 20),
        *(log(old, now - 10 * d - 50 + i) for i in range(3)),
        log(old, now - 2 * d),  # received late (an old server): its own time keeps it
        log(recent, now - d - 10),
        log(recent, now - d - 5),
    ]
    events = [
        event(open_old, "room.opened", now - 20 * d),
        event(old, "room.opened", now - 10 * d - 3600),
        event(old, "message.created", now - 10 * d - 99),
        event(recent, "room.opened", now - d - 3600),
    ]
    samples = [
        *(sample(old, now - 10 * d - 50 + i) for i in range(2)),
        sample(open_old, now - d),
        sample(recent, now - d - 10),
    ]
    recordings = [
        recording(open_old, "carol", now - 20 * d, "recording"),
        recording(old, "alice", now - 10 * d - 3000, "complete"),
        recording(old, "bob", now - 10 * d - 2000, "partial"),
        recording(recent, "dave", now - d - 3000, "complete"),
    ]

    def dead(app_seq: int, at: float) -> WebhookDeadRow:
        return WebhookDeadRow(
            sdk_app_id=APP, app_seq=app_seq, attempts=9, last_error="HTTP 500", died_at=at
        )

    # Deliveries given up on: one ten days ago (it goes), one a day ago (it stays).
    dead_letters = [dead(2, now - 10 * d + 60), dead(4, now - d + 60)]

    async def body(s: AsyncSession, _out: Outbox) -> None:
        await s.merge(AppRow(sdk_app_id=APP, created_at=now - 30 * d))  # a server may have it
        rows = [*sessions, *messages, *events, *logs, *samples, *recordings, *dead_letters]
        for row in rows:
            s.add(row)
            await s.flush()  # one at a time, so ids follow time

    await transaction(store, "populating", body)

    files = {
        f"recordings/{old}/alice-1.mkv": 100,
        f"recordings/{old}/bob-1.mkv": 200,
        f"recordings/{old}/composite.mp4": 50,
        f"recordings/{open_old}/carol-1.mkv": 10,
        f"recordings/{recent}/dave-1.mkv": 20,
        f"recordings/{stray}/eve-1.mkv": 30,
        "recordings/notes.txt": 5,
    }
    for name, size in files.items():
        path = data_dir / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(b"x" * size)
    gone_files = sorted(name for name in files if name.startswith(f"recordings/{old}/"))
    kept = {
        "messages": {(m.session_id, m.seq) for m in messages if m.session_id != old},
        "journal": {(e.session_id, e.session_seq) for e in events if e.session_id != old},
        "client_logs": {r.id for r in logs if r.received_at > now - RETENTION * d},
        "quality_samples": {r.id for r in samples if r.received_at > now - RETENTION * d},
        "recordings": {r.id for r in recordings if r.session_id != old},
        "dead_letters": {r.app_seq for r in dead_letters if r.died_at > now - RETENTION * d},
    }
    return Populated(
        old=old,
        open_old=open_old,
        recent=recent,
        gone_files=gone_files,
        kept_files=sorted(set(files) - set(gone_files)),
        kept=kept,
    )


async def contents(store: Store) -> dict[str, set[Any]]:
    """What the six tables hold, in the shape of :attr:`Populated.kept`."""

    async def body(s: AsyncSession, _out: Outbox) -> dict[str, set[Any]]:
        messages = await s.execute(select(MessageRow.session_id, MessageRow.seq))
        return {
            "messages": {(session_id, seq) for session_id, seq in messages},
            "journal": {
                (session_id, seq)
                for session_id, seq in await s.execute(
                    select(JournalRow.session_id, JournalRow.session_seq)
                )
            },
            "client_logs": set(await s.scalars(select(ClientLogRow.id))),
            "quality_samples": set(await s.scalars(select(QualitySampleRow.id))),
            "recordings": set(await s.scalars(select(RecordingRow.id))),
            "dead_letters": set(await s.scalars(select(WebhookDeadRow.app_seq))),
        }

    return await transaction(store, "reading", body, readonly=True)


def files_under(data_dir: Path) -> list[str]:
    """Every file under the data directory's recordings, as relative POSIX paths."""
    root = data_dir / "recordings"
    return sorted(p.relative_to(data_dir).as_posix() for p in root.rglob("*") if p.is_file())


def sqlite_store(data_dir: Path) -> Store:
    """The store ``tavkit gc --data-dir`` opens by default."""
    return Store.open(f"sqlite+aiosqlite:///{data_dir / 'tavkit.db'}")


def gc(*args: str) -> tuple[int, str]:
    """Run ``tavkit gc ARGS`` as a real process; its exit code and output."""
    process = tavkit("gc", *args)
    output, _ = process.communicate(timeout=CLI_TIMEOUT)
    return process.returncode, output


async def test_gc_dry_run_then_gc_delete_exactly_the_old_rows_and_files(tmp_path: Path):
    """``tavkit gc --dry-run`` lists what would go and deletes nothing; ``tavkit gc`` then
    deletes exactly that: old rows of each kind and the old session's files."""
    data_dir = tmp_path / "data"
    store = sqlite_store(data_dir)
    await store.migrate()
    try:
        made = await populate(store, data_dir, time.time())
        before = await contents(store)
    finally:
        await store.close()
    everything = files_under(data_dir)
    days = ("--retention-days", str(RETENTION), "--data-dir", str(data_dir))

    code, text = gc(*days, "--dry-run")
    assert code == 0, text
    assert "dry run, nothing deleted" in text
    assert all(name in text for name in made.gone_files)
    assert not any(name in text for name in made.kept_files)
    assert "in-call messages           3" in text and "client log lines           5" in text
    code, dry = gc(*days, "--dry-run", "--json")
    assert code == 0, dry
    planned = json.loads(dry)
    assert {kind: planned[kind] for kind in GONE} == GONE
    assert planned["files"] == made.gone_files and planned["bytes"] == 350
    assert planned["dryRun"] is True and planned["failed"] == []
    assert files_under(data_dir) == everything

    code, out = gc(*days, "--json")
    assert code == 0, out
    done = json.loads(out)
    assert {key: done[key] for key in planned if key not in ("dryRun", "cutoff")} == {
        key: planned[key] for key in planned if key not in ("dryRun", "cutoff")
    }
    assert files_under(data_dir) == made.kept_files
    assert not (data_dir / "recordings" / str(made.old)).exists()
    store = sqlite_store(data_dir)
    try:
        after = await contents(store)
    finally:
        await store.close()
    assert after == made.kept
    assert all(after[name] < before[name] for name in after)

    # A second pass finds nothing left to do.
    code, out = gc(*days, "--json")
    assert code == 0, out
    again = json.loads(out)
    assert [again[kind] for kind in GONE] == [0] * len(GONE) and again["files"] == []


async def test_gc_refuses_without_a_retention_or_a_database(tmp_path: Path):
    """``tavkit gc`` needs a retention, and never creates a database where there is none."""
    code, out = gc("--data-dir", str(tmp_path))
    assert code == 2 and "--retention-days" in out
    missing = tmp_path / "nowhere"
    code, out = gc("--retention-days", "3", "--data-dir", str(missing))
    assert code == 1 and "no database" in out
    assert not missing.exists()
    code, out = gc("--retention-days", "0", "--data-dir", str(tmp_path))
    assert code == 2


@pytest.mark.parametrize(
    ("server_days", "own", "gone"),
    [
        (RETENTION, {APP: 0}, False),  # the app keeps its data forever
        (None, {APP: RETENTION}, True),  # only the app collects
        (RETENTION, {APP + 1: 0}, True),  # another app's choice changes nothing here
        (RETENTION, {APP: 15}, False),  # a longer retention of its own keeps 10-day-old data
        (60, {APP: RETENTION}, True),  # a shorter one of its own collects it
    ],
)
async def test_an_app_s_own_retention_replaces_the_server_s(
    store: Store,
    tmp_path: Path,
    server_days: float | None,
    own: dict[int, float],
    gone: bool,
):
    """``retentionDays`` of an app (the apps file) decides for its sessions, messages,
    logs, samples and recordings; 0 keeps them forever; other apps keep the server's."""
    now = 1_700_000_000.0
    made = await populate(store, tmp_path, now)
    before = await contents(store)
    report = await collect(store, tmp_path, retention_days=server_days, app_retention=own, now=now)
    if gone:
        assert {k: v for k, v in report.to_json().items() if k in GONE} == GONE
        assert await contents(store) == made.kept
    elif own.get(APP) == 0:
        assert report.rows == 0 and await contents(store) == before
    else:
        # 15 days: the session closed 10 days ago stays; logs 20 days old still go.
        assert report.messages == 0 and report.recordings == 0 and report.client_logs == 2
    assert report.app_cutoffs == {
        app: (now - days * DAY) if days else None for app, days in own.items()
    }


def test_app_retention_and_log_caps_are_read_from_the_apps_file(tmp_path: Path):
    """``retentionDays`` and ``logDailyCap`` in the apps file land on the app; nonsense is
    refused naming the field; the server knows it collects when only an app has one."""
    path = tmp_path / "apps.json"
    key = "k" * 32
    path.write_text(
        json.dumps([{"sdkAppId": 7, "key": key, "retentionDays": 30, "logDailyCap": 0}])
    )
    settings = Settings(apps=read_apps_file(path))
    assert settings.app_retention() == {7: 30.0} and settings.collects
    assert settings.log_daily_cap_of(7) == 0 and settings.log_daily_cap_of(8) == 500_000
    for bad in ({"retentionDays": -1}, {"retentionDays": 1.5}, {"logDailyCap": True}):
        path.write_text(json.dumps([{"sdkAppId": 7, "key": key, **bad}]))
        with pytest.raises(ValueError, match=next(iter(bad))):
            read_apps_file(path)
    path.write_text(json.dumps([{"sdkAppId": 7, "key": key, "retentionDays": 0}]))
    assert not Settings(apps=read_apps_file(path)).collects


@pytest.mark.parametrize("batch", [2, 500])
async def test_collect_deletes_in_batches_on_each_database(
    store: Store, tmp_path: Path, batch: int
):
    """The library function, on SQLite and PostgreSQL, pages by ``batch`` rows: a dry run
    changes nothing, the real pass leaves exactly what is newer or still open."""
    now = 1_700_000_000.0
    made = await populate(store, tmp_path, now)
    before = await contents(store)

    planned = await collect(
        store, tmp_path, retention_days=RETENTION, now=now, dry_run=True, batch=batch
    )
    assert await contents(store) == before
    assert planned.files == made.gone_files and planned.bytes == 350
    done = await collect(store, tmp_path, retention_days=RETENTION, now=now, batch=batch)
    for report in (planned, done):
        assert {k: v for k, v in report.to_json().items() if k in GONE} == GONE
    assert done.files == made.gone_files and not done.dry_run
    assert await contents(store) == made.kept
    assert files_under(tmp_path) == made.kept_files

    # The open session stays whole however old it is, until it closes.
    assert (tmp_path / "recordings" / str(made.open_old) / "carol-1.mkv").exists()


async def test_serve_with_retention_days_collects_on_its_own(server_factory: ServerFactory):
    """``serve`` with ``retention_days`` runs the collection in the background, repeatedly:
    old data written while it runs goes, the rest stays."""
    server = server_factory(retention_days=RETENTION, retention_interval=0.2)
    data_dir = server.settings.data_dir
    store = Store.open(server.database.url, schema=server.database.schema)
    try:
        made = await populate(store, data_dir, time.time())

        async def collected() -> bool:
            return await contents(store) == made.kept and files_under(data_dir) == made.kept_files

        await eventually(collected)
    finally:
        await store.close()


def test_retention_settings_are_read_and_checked():
    """TAVKIT_RETENTION_DAYS (whole days, at least 1) and _INTERVAL land in their fields;
    by default nothing is collected."""
    settings = Settings.from_env({"TAVKIT_RETENTION_DAYS": "30", "TAVKIT_RETENTION_INTERVAL": "60"})
    assert (settings.retention_days, settings.retention_interval) == (30, 60.0)
    assert Settings.from_env({}).retention_days is None
    for variable, value in (
        ("TAVKIT_RETENTION_DAYS", "0"),
        ("TAVKIT_RETENTION_DAYS", "1.5"),
        ("TAVKIT_RETENTION_INTERVAL", "0"),
        ("TAVKIT_RETENTION_INTERVAL", "nan"),
    ):
        with pytest.raises(ValueError):
            Settings.from_env({variable: value})
