"""``tavkit recordings compose``: one session's recordings rendered into one MP4.

The session's files are found through the database's recording rows (status
``complete`` or ``partial``) when the database holds any for it, else by scanning
``<data_dir>/recordings/<uuid>/*.mkv`` and reading the start time each file stores -
so a copied-out session directory composes without its database.
"""

from __future__ import annotations

import asyncio
import os
import uuid
from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated

import typer
from sqlalchemy.engine import make_url

from tavkit.errors import ServerCode, ServerError, TAvKitError
from tavkit.recording.compose import (
    DEFAULT_FPS,
    LAYOUTS,
    ComposeInput,
    compose,
    inputs_from_directory,
)
from tavkit.recording.info import stored_started_at
from tavkit.server.settings import Settings

__all__ = ["recordings_app"]

recordings_app = typer.Typer(
    help="Work with a session's recordings.", no_args_is_help=True, add_completion=False
)


def _env(name: str) -> str:
    return f"(env TAVKIT_{name})"


@recordings_app.command("compose")
def compose_command(
    session: Annotated[str, typer.Argument(help="The session (room) UUID.")],
    layout: Annotated[str, typer.Option(help=f"Layout: {', '.join(LAYOUTS)}.")] = "grid",
    out: Annotated[
        Path | None,
        typer.Option(help="MP4 to write (default <data-dir>/recordings/<uuid>/composite.mp4)."),
    ] = None,
    size: Annotated[str, typer.Option(help="Output size, WIDTHxHEIGHT.")] = "1280x720",
    fps: Annotated[int, typer.Option(help="Output frame rate.")] = DEFAULT_FPS,
    data_dir: Annotated[
        Path | None, typer.Option(help=f"Data directory. {_env('DATA_DIR')}")
    ] = None,
    database_url: Annotated[
        str | None, typer.Option(help=f"SQLAlchemy URL. {_env('DATABASE_URL')}")
    ] = None,
    database_schema: Annotated[
        str | None, typer.Option(help=f"PostgreSQL schema. {_env('DATABASE_SCHEMA')}")
    ] = None,
) -> None:
    """Render a session's per-participant files into one MP4 (grid video, mixed audio)."""
    try:
        room_uuid = uuid.UUID(session)
    except ValueError:
        raise typer.BadParameter(f"not a UUID: {session!r}", param_hint="SESSION") from None
    dimensions = _parse_size(size)
    given = {"data_dir": data_dir, "database_url": database_url, "database_schema": database_schema}
    try:
        settings = Settings.from_env(
            os.environ, **{name: value for name, value in given.items() if value is not None}
        )
        inputs = _inputs(
            room_uuid, settings.data_dir, settings.effective_database_url, settings.database_schema
        )
        target = out or settings.data_dir / "recordings" / str(room_uuid) / "composite.mp4"
        result = compose(inputs, target, layout=layout, size=dimensions, fps=fps)
    except (ValueError, TAvKitError) as exc:
        typer.echo(f"tavkit recordings compose: {exc}", err=True)
        raise typer.Exit(1) from None
    typer.echo(
        f"{result.path}: {result.participants} participant(s), {result.duration:.1f} s, "
        f"{result.size[0]}x{result.size[1]} {result.video_codec}"
    )


def _parse_size(text: str) -> tuple[int, int]:
    width, sep, height = text.lower().partition("x")
    if sep and width.isdigit() and height.isdigit():
        size = int(width), int(height)
        if all(16 <= side <= 7680 and side % 2 == 0 for side in size):
            return size
    raise typer.BadParameter(f"expected even WIDTHxHEIGHT, e.g. 1280x720: {text!r}")


def _inputs(
    room_uuid: uuid.UUID, data_dir: Path, url: str, schema: str | None
) -> list[ComposeInput]:
    """The session's files: from the database's rows if it has any, else from the disk."""
    parsed = make_url(url)
    # Without a database here (no SQLite file), do not create an empty one.
    has_database = parsed.get_backend_name() != "sqlite" or Path(parsed.database or "").is_file()
    inputs = asyncio.run(_rows(room_uuid, data_dir, url, schema)) if has_database else []
    if not inputs:
        inputs = inputs_from_directory(data_dir / "recordings" / str(room_uuid))
    if not inputs:
        raise ServerError(
            ServerCode.SESSION_NOT_FOUND, f"no recordings of session {room_uuid} were found"
        )
    return inputs


async def _rows(
    room_uuid: uuid.UUID, data_dir: Path, url: str, schema: str | None
) -> list[ComposeInput]:
    """Complete and partial recording rows of the session; [] without a usable database."""
    from sqlalchemy.exc import SQLAlchemyError

    from tavkit.server.recording.rows import playable
    from tavkit.server.store.db import Store

    store = Store.open(url, schema=schema)
    try:
        rows = await playable(store, room_uuid)
    except (SQLAlchemyError, OSError, TAvKitError):
        return []  # an older schema or an unreachable server: fall back to the files
    finally:
        await store.close()
    inputs = []
    for row in rows:
        path = data_dir / row.path
        if path.is_file():
            # The file's own tag is the first packet's time; the row may hold the
            # stint's start if the server died before it could update it.
            started_at = stored_started_at(path) or datetime.fromtimestamp(row.started_at, UTC)
            inputs.append(ComposeInput(path, started_at, row.user_id))
    return inputs
