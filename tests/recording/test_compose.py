"""The offline composite: grid, letterboxing, alignment on startedAt, mixed audio, and its CLI."""

from __future__ import annotations

import array
import asyncio
import os
import shutil
import subprocess
import sys
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path

import av
import pytest
from av import AudioFrame, VideoFrame

from tavkit.recording._grid import grid_cells, grid_shape
from tavkit.recording.compose import ComposeInput, compose, inputs_from_directory

from ._synth import BLUE, RED, participant_file

T0 = datetime(2026, 1, 1, 12, 0, tzinfo=UTC)
REPO = Path(__file__).resolve().parents[2]
# The CLI must find the files on disk, not through whatever TAVKIT_* the runner has.
CLEAN_ENV = {k: v for k, v in os.environ.items() if not k.startswith("TAVKIT_")}


@pytest.fixture(scope="module")
def session_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Two participants: ann (red 640x480, a tone) from 0 s, bob (blue 320x240, silent) from 1 s."""
    directory = tmp_path_factory.mktemp("recordings") / "5b1f3c1e-0000-4000-8000-000000000001"
    directory.mkdir()
    participant_file(
        directory / "ann-1.mkv",
        user_id="ann",
        started_at=T0,
        seconds=3.0,
        size=(640, 480),
        colour=RED,
        tone=440,
    )
    participant_file(
        directory / "bob-1.mkv",
        user_id="bob",
        started_at=T0 + timedelta(seconds=1),
        seconds=3.0,
        size=(320, 240),
        colour=BLUE,
        tone=None,
    )
    return directory


def region_mean(frame: VideoFrame, plane: int, x0: float, x1: float, y0: float, y1: float) -> float:
    """Mean byte value of one plane over a fraction of the picture."""
    data = frame.planes[plane]
    div = 1 if plane == 0 else 2
    width, height = frame.width // div, frame.height // div
    raw, stride = bytes(data), data.line_size
    left, right = int(x0 * width), int(x1 * width)
    rows = range(int(y0 * height), int(y1 * height))
    total = sum(sum(raw[y * stride + left : y * stride + right]) for y in rows)
    return total / ((right - left) * len(rows))


def colour_at(
    frame: VideoFrame, x0: float, x1: float, y0: float = 0.3, y1: float = 0.7
) -> tuple[float, ...]:
    """Mean (Y, U, V) over a region."""
    return tuple(region_mean(frame, p, x0, x1, y0, y1) for p in range(3))


def near(colour: tuple[float, ...], expected: tuple[int, int, int], slack: float = 12) -> bool:
    """Whether every component is within ``slack`` of ``expected``."""
    return all(abs(a - b) <= slack for a, b in zip(colour, expected, strict=True))


def read_output(path: Path) -> tuple[dict[float, VideoFrame], list[float], float]:
    """Frames by time, audio peaks per 0.5 s, and the container duration."""
    frames: dict[float, VideoFrame] = {}
    peaks: list[float] = []
    with av.open(str(path)) as container:
        duration = float(container.duration or 0) / 1_000_000
        for frame in container.decode(*container.streams):
            if frame.pts is None or frame.time_base is None:
                continue
            moment = float(frame.pts * frame.time_base)
            if isinstance(frame, VideoFrame):
                frames[round(moment, 2)] = frame
            elif isinstance(frame, AudioFrame):
                slot = int(moment * 2)
                while len(peaks) <= slot:
                    peaks.append(0.0)
                samples = array.array("f", bytes(frame.planes[0])[: frame.samples * 4])
                peaks[slot] = max(peaks[slot], max((abs(v) for v in samples), default=0.0))
    return frames, peaks, duration


def frame_near(frames: dict[float, VideoFrame], moment: float) -> VideoFrame:
    """The decoded frame closest to ``moment``."""
    return frames[min(frames, key=lambda t: abs(t - moment))]


def test_grid_shapes_follow_the_participant_count() -> None:
    """1 fills the canvas, 2 sit side by side, 3-4 make 2x2 and up to 9 make 3x3."""
    assert [grid_shape(n) for n in (1, 2, 3, 4, 5, 9)] == [
        (1, 1),
        (2, 1),
        (2, 2),
        (2, 2),
        (3, 3),
        (3, 3),
    ]
    cells = grid_cells(3, 1280, 720)
    assert [(c.x, c.y, c.width, c.height) for c in cells] == [
        (0, 0, 640, 360),
        (640, 0, 640, 360),
        (0, 360, 640, 360),
    ]


def test_two_participants_side_by_side_aligned_on_their_start(
    session_dir: Path, tmp_path: Path
) -> None:
    """Ann fills the left half from 0 s, bob the right from 1 s; ann's tone is in the mix."""
    inputs = inputs_from_directory(session_dir)
    assert [(i.user_id, i.started_at) for i in inputs] == [
        ("ann", T0),
        ("bob", T0 + timedelta(seconds=1)),
    ]
    result = compose(inputs, tmp_path / "out.mp4")
    assert result.size == (1280, 720) and result.participants == 2

    frames, peaks, duration = read_output(tmp_path / "out.mp4")
    assert abs(duration - 4.0) < 0.25  # bob ends at 1 s + 3 s
    sample = frame_near(frames, 2.0)
    assert (sample.width, sample.height) == (1280, 720)
    assert near(colour_at(sample, 0.05, 0.45), RED)
    assert near(colour_at(sample, 0.55, 0.95), BLUE)
    # 4:3 pictures in 16:9 halves: black bars above and below (letterbox).
    assert region_mean(sample, 0, 0.05, 0.45, 0.0, 0.05) < 20
    before_bob = frame_near(frames, 0.5)
    assert near(colour_at(before_bob, 0.05, 0.45), RED)
    assert near(colour_at(before_bob, 0.55, 0.95), (16, 128, 128))  # bob not there yet
    after_ann = frame_near(frames, 3.7)
    assert near(colour_at(after_ann, 0.05, 0.45), (16, 128, 128))  # ann's file has ended
    assert near(colour_at(after_ann, 0.55, 0.95), BLUE)
    assert min(peaks[:5]) > 0.2  # ann's tone through her 3 s
    assert max(peaks[7:]) < 0.02  # then only bob, who is silent


def test_sums_audio_and_clips(tmp_path: Path) -> None:
    """Two loud tones are summed (louder than either) and clipped to full scale, not wrapped."""
    files = []
    for name, tone in (("a", 440), ("b", 440)):
        files.append(
            ComposeInput(
                participant_file(
                    tmp_path / f"{name}.mkv",
                    user_id=name,
                    started_at=T0,
                    seconds=1.0,
                    size=(160, 120),
                    colour=RED,
                    tone=tone,
                ),
                T0,
                name,
            )
        )
    compose(files, tmp_path / "mix.mp4", size=(320, 180))
    _, peaks, _ = read_output(tmp_path / "mix.mp4")
    assert 0.7 < max(peaks) <= 1.05  # 0.4 + 0.4 in phase, well above one tone's 0.4


def test_cli_composes_a_session_directory(session_dir: Path, tmp_path: Path) -> None:
    """`python -m tavkit recordings compose UUID` writes the MP4 from the files on disk."""
    data_dir = tmp_path / "data"
    target = data_dir / "recordings" / session_dir.name
    shutil.copytree(session_dir, target)
    out = tmp_path / "cli.mp4"
    completed = subprocess.run(
        [
            sys.executable,
            "-m",
            "tavkit",
            "recordings",
            "compose",
            target.name,
            "--data-dir",
            str(data_dir),
            "--out",
            str(out),
            "--size",
            "640x360",
        ],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=REPO,
        env=CLEAN_ENV,
    )
    assert completed.returncode == 0, completed.stderr
    assert str(out) in completed.stdout
    frames, _, duration = read_output(out)
    assert abs(duration - 4.0) < 0.25
    assert (frame_near(frames, 2.0).width, frame_near(frames, 2.0).height) == (640, 360)


def test_cli_unknown_session_is_error_14007(tmp_path: Path) -> None:
    """Composing a session without recordings fails with server error 14007."""
    completed = subprocess.run(
        [
            sys.executable,
            "-m",
            "tavkit",
            "recordings",
            "compose",
            "5b1f3c1e-0000-4000-8000-00000000ffff",
            "--data-dir",
            str(tmp_path),
        ],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=REPO,
        env=CLEAN_ENV,
    )
    assert completed.returncode != 0
    assert "14007" in completed.stdout + completed.stderr


async def test_cli_takes_the_files_from_the_database_rows(
    session_dir: Path, tmp_path: Path
) -> None:
    """With a database, the CLI composes the complete/partial rows' files and skips failed ones."""
    from tavkit.server.store.db import Store
    from tavkit.server.store.models import AppRow, SessionRow
    from tavkit.server.store.recording_models import RecordingRow

    room = uuid.uuid4()
    elsewhere = tmp_path / "moved"  # not <data>/recordings/<uuid>: only the rows lead there
    elsewhere.mkdir()
    for name in ("ann-1.mkv", "bob-1.mkv"):
        shutil.copy(session_dir / name, elsewhere / name)
    store = Store.open(f"sqlite+aiosqlite:///{tmp_path / 'tavkit.db'}")
    try:
        await store.migrate()
        async with store.sessions() as db, db.begin():
            db.add(AppRow(sdk_app_id=1400000001, created_at=T0.timestamp()))
            await db.flush()
            db.add(SessionRow(id=room, sdk_app_id=1400000001, room_id=7, opened_at=0.0))
            await db.flush()
            for stint, (user, status) in enumerate((("ann", "complete"), ("bob", "failed"))):
                db.add(
                    RecordingRow(
                        id=uuid.uuid4(),
                        session_id=room,
                        user_id=user,
                        stint=stint + 1,
                        path=f"moved/{user}-1.mkv",
                        started_at=T0.timestamp(),
                        status=status,
                        has_video=True,
                        has_audio=True,
                    )
                )
    finally:
        await store.close()
    out = tmp_path / "db.mp4"
    completed = await asyncio.to_thread(
        subprocess.run,
        [
            sys.executable,
            "-m",
            "tavkit",
            "recordings",
            "compose",
            str(room),
            "--data-dir",
            str(tmp_path),
            "--out",
            str(out),
            "--size",
            "320x180",
        ],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=REPO,
        env=CLEAN_ENV,
    )
    assert completed.returncode == 0, completed.stderr
    assert "1 participant(s)" in completed.stdout
    _, _, duration = read_output(out)
    assert abs(duration - 3.0) < 0.25  # ann's 3 s alone
