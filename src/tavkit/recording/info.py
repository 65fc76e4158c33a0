"""What one recording file holds, and how to find out from the file alone.

:class:`RecordingInfo` is what :meth:`ParticipantRecorder.stop` returns for a file it
closed cleanly. :func:`probe` builds the same record from a file on disk - the way to
close the books on a file cut short by a crash, whose writer never returned. Both read
the participant and wall-clock start the writer stores as Matroska tags
(:data:`TAG_STARTED_AT`, :data:`TAG_USER_ID`), so a file explains itself even when the
database row that described it is gone.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path
from typing import Final

import av

from tavkit.errors import ServerCode, ServerError

__all__ = [
    "TAG_STARTED_AT",
    "TAG_USER_ID",
    "RecordingInfo",
    "file_digest",
    "parse_started_at",
    "probe",
    "stored_started_at",
]

TAG_STARTED_AT: Final = "TAVKIT_STARTED_AT"
"""Matroska tag: ISO 8601 UTC wall-clock time of the file's first packet (pts 0)."""
TAG_USER_ID: Final = "TAVKIT_USER_ID"
"""Matroska tag: the userId whose media the file holds."""

_CHUNK: Final = 1 << 20


@dataclass(frozen=True)
class RecordingInfo:
    """One participant's recording file: when it starts and ends, what it holds.

    ``started_at`` is the wall-clock time of the first packet written (``None`` when
    nothing ever arrived and no file exists); ``duration`` is seconds of media;
    ``passthrough`` says, per kind that had a receiver, whether the encoded stream was
    stored as received (``True``) or decoded and encoded again (``False``).
    """

    path: Path
    user_id: str | None
    started_at: datetime | None
    ended_at: datetime | None
    duration: float | None
    size: int
    sha256: str
    has_video: bool
    has_audio: bool
    passthrough: dict[str, bool] = field(default_factory=dict)

    @classmethod
    def of_streams(
        cls,
        path: Path,
        *,
        user_id: str | None,
        started_at: datetime | None,
        ends: dict[str, float],
        size: int,
        sha256: str,
        passthrough: dict[str, bool] | None = None,
    ) -> RecordingInfo:
        """Build the info from each stream kind's end time (seconds after the start).

        The writer (as it closes a file) and :func:`probe` (reading one back after a
        crash) know the same things, so both describe a file through this.
        """
        duration = max(ends.values()) if ends else None
        return cls(
            path=path,
            user_id=user_id,
            started_at=started_at,
            ended_at=(
                started_at + timedelta(seconds=duration)
                if started_at is not None and duration is not None
                else None
            ),
            duration=duration,
            size=size,
            sha256=sha256,
            has_video="video" in ends,
            has_audio="audio" in ends,
            passthrough=dict(passthrough or {}),
        )


def file_digest(path: Path) -> tuple[int, str]:
    """Size and hex SHA-256 of a file; ``(0, sha256(b""))`` when it does not exist."""
    digest = hashlib.sha256()
    size = 0
    try:
        with path.open("rb") as file:
            while chunk := file.read(_CHUNK):
                digest.update(chunk)
                size += len(chunk)
    except FileNotFoundError:
        pass
    return size, digest.hexdigest()


def parse_started_at(value: str | None) -> datetime | None:
    """The :data:`TAG_STARTED_AT` value as an aware datetime, ``None`` if absent or bad."""
    if not value:
        return None
    try:
        parsed = datetime.fromisoformat(value)
    except ValueError:
        return None
    return parsed if parsed.tzinfo is not None else None


def stored_started_at(path: Path) -> datetime | None:
    """The start time a recording file stores, read from its header only."""
    try:
        with av.open(str(path), "r") as container:
            tags = {key.upper(): value for key, value in container.metadata.items()}
    except av.FFmpegError:
        return None
    return parse_started_at(tags.get(TAG_STARTED_AT))


def probe(path: Path) -> RecordingInfo:
    """Read a recording file to its end and describe it (blocking: use a thread).

    Meant for files whose writer did not finish - a crash leaves a file without a
    closing cluster - so it demuxes every packet instead of trusting the header's
    duration (a streamed file has none). Raises :class:`~tavkit.errors.ServerError`
    14008 when the file is missing or is not a readable recording.
    """
    path = Path(path)
    size, sha256 = file_digest(path)
    if not path.is_file():
        raise ServerError(ServerCode.RECORDING_FAILED, f"no recording file at {path}")
    ends: dict[str, float] = {}
    tags: dict[str, str] = {}
    try:
        with av.open(str(path), "r") as container:
            tags = {key.upper(): value for key, value in container.metadata.items()}
            kinds = {stream.index: stream.type for stream in container.streams}
            for packet in container.demux():
                if packet.pts is None or packet.time_base is None or packet.size == 0:
                    continue
                end = float((packet.pts + (packet.duration or 0)) * packet.time_base)
                kind = kinds.get(packet.stream_index, "")
                ends[kind] = max(ends.get(kind, 0.0), end)
    except av.FFmpegError as exc:
        if not ends:
            raise ServerError(
                ServerCode.RECORDING_FAILED, f"unreadable recording {path}: {exc}"
            ) from exc
        # A file cut mid-cluster ends in garbage: what came before it still counts.
    return RecordingInfo.of_streams(
        path,
        user_id=tags.get(TAG_USER_ID),
        started_at=parse_started_at(tags.get(TAG_STARTED_AT)),
        ends=ends,
        size=size,
        sha256=sha256,
    )
