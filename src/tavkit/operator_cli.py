"""``tavkit rooms`` and ``tavkit sessions``: a server's rooms and calls from a terminal.

For operators who live in a shell (LiveKit's ``lk room list`` is the model): each
command is one call to the server's REST API as the app's admin, so it works against
any ``tavkit serve`` it can reach, local or behind a proxy, and needs no database
access. Credentials as the dashboard's: the admin userId signed with the admin key
(``TAVKIT_ADMIN_KEY``), minted here for each run and sent in headers only.

Output is a plain table, or with ``--json`` the server's own JSON answer, unchanged,
for scripts. A refusal prints the server's error (module, code, message) and exits 1;
a server out of reach exits 1 too.

A room argument that is all digits is the numeric room; anything else is a string
room (TRTC's ``strRoomId``); ``--str`` makes digits a string room too, since room
``123`` and room ``"123"`` are different rooms. Tables show string rooms quoted.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any
from urllib.parse import quote

import httpx
import typer

from tavkit.auth.signature import gen_user_sig
from tavkit.errors import ServerError
from tavkit.protocol import RoomId, parse_room_id, parse_str_room_id, room_label, room_path

__all__ = ["rooms_app", "sessions_app"]

ADMIN_SIG_TTL = 300
"""Lifetime (s) of the admin userSig minted for one command: it is used at once."""

rooms_app = typer.Typer(
    help="List the open rooms, their members; close a room, remove a member.",
    no_args_is_help=True,
    add_completion=False,
)
sessions_app = typer.Typer(
    help="List past and open sessions (calls); show one, list and download its recordings.",
    no_args_is_help=True,
    add_completion=False,
)


@dataclass(frozen=True)
class Admin:
    """Where the server is and how to sign in to it as the app's admin."""

    server: str
    sdk_app_id: int
    admin_key: str
    admin_user: str
    as_json: bool

    def headers(self) -> dict[str, str]:
        """The admin's credential headers, with a userSig minted now."""
        sig = gen_user_sig(self.sdk_app_id, self.admin_key, self.admin_user, ADMIN_SIG_TTL)
        return {
            "X-TAvKit-SdkAppId": str(self.sdk_app_id),
            "X-TAvKit-UserId": self.admin_user,
            "X-TAvKit-UserSig": sig,
        }

    @contextmanager
    def client(self) -> Iterator[httpx.Client]:
        """An HTTP client for the server, signed in."""
        with httpx.Client(
            base_url=self.server.rstrip("/"), headers=self.headers(), timeout=30
        ) as http:
            yield http

    def call(self, method: str, path: str, **kwargs: Any) -> Any:
        """One REST call; its JSON answer, or exit 1 with the server's error."""
        try:
            with self.client() as http:
                response = http.request(method, path, **kwargs)
        except httpx.HTTPError as exc:
            _fail(f"cannot reach {self.server}: {exc}")
        if response.status_code >= 400:
            _refused(response)
        return response.json()


def _fail(message: str) -> None:
    typer.echo(message, err=True)
    raise typer.Exit(1)


def _refused(response: httpx.Response) -> None:
    try:
        body = response.json()
        told = f"[{body['module']} {body['errorCode']}] {body['errorMsg']}"
    except (ValueError, KeyError, TypeError):
        told = response.text[:200]
    _fail(f"refused (HTTP {response.status_code}): {told}")


def _connect(
    ctx: typer.Context,
    sdk_app_id: Annotated[
        int, typer.Option("--sdk-app-id", envvar="TAVKIT_SDK_APP_ID", help="The app's sdkAppId.")
    ],
    admin_key: Annotated[
        str,
        typer.Option(
            "--admin-key",
            envvar="TAVKIT_ADMIN_KEY",
            help="The server's (or the app's) admin key.",
            show_default=False,
        ),
    ],
    server: Annotated[
        str, typer.Option("--server", envvar="TAVKIT_SERVER", help="The server's base URL.")
    ] = "http://127.0.0.1:8080",
    admin_user: Annotated[
        str, typer.Option("--admin-user", help="The server's admin userId.")
    ] = "administrator",
    as_json: Annotated[
        bool, typer.Option("--json", help="Print the server's JSON answer as is.")
    ] = False,
) -> None:
    """Sign in to the server as the app's admin (options shared by every subcommand)."""
    ctx.obj = Admin(server, sdk_app_id, admin_key, admin_user, as_json)


rooms_app.callback()(_connect)
sessions_app.callback()(_connect)


def _admin(ctx: typer.Context) -> Admin:
    admin = ctx.obj
    assert isinstance(admin, Admin)
    return admin


def _show(admin: Admin, body: Any, rows: list[dict[str, Any]] | None = None) -> None:
    """``body`` as JSON with ``--json``; else ``rows`` as a table (or ``body`` as key: value)."""
    if admin.as_json:
        sys.stdout.write(json.dumps(body, ensure_ascii=False) + "\n")
    elif rows is None:
        for key, value in body.items():
            typer.echo(f"{key}: {_cell(value)}")
    else:
        typer.echo(_table(rows) if rows else "(none)")


def _cell(value: Any) -> str:
    if isinstance(value, dict | list):
        return json.dumps(value, ensure_ascii=False, separators=(",", ":"))
    return "" if value is None else str(value)


def _column_cell(column: str, value: Any) -> str:
    """A cell; a ``roomId`` shows its kind (``"123"`` quoted is the string room)."""
    if column == "roomId" and isinstance(value, int | str) and not isinstance(value, bool):
        return room_label(value)
    return _cell(value)


def _table(rows: list[dict[str, Any]]) -> str:
    """Rows as aligned columns, the columns those of the first row, in its order."""
    columns = list(rows[0])
    cells = [[_column_cell(column, row.get(column)) for column in columns] for row in rows]
    widths = [max(len(c), *(len(r[i]) for r in cells)) for i, c in enumerate(columns)]
    lines = ["  ".join(c.ljust(w) for c, w in zip(columns, widths, strict=True)).rstrip()]
    for row in cells:
        lines.append("  ".join(v.ljust(w) for v, w in zip(row, widths, strict=True)).rstrip())
    return "\n".join(lines)


RoomArg = Annotated[
    str, typer.Argument(help="The room: its number, or a string room (TRTC's strRoomId).")
]
StrFlag = Annotated[
    bool, typer.Option("--str", help="The room is a string room even if it is all digits.")
]


def _room(text: str, as_string: bool) -> RoomId:
    """The room an argument names: digits are the numeric room unless ``--str``."""
    try:
        if text.isascii() and text.isdigit() and not as_string:
            return parse_room_id(int(text), "room")
        return parse_str_room_id(text, "room")
    except ServerError as exc:
        raise typer.BadParameter(exc.message) from None


UuidArg = Annotated[str, typer.Argument(help="The session's roomUuid.")]


@rooms_app.command("list")
def rooms_list(ctx: typer.Context) -> None:
    """The app's open rooms."""
    admin = _admin(ctx)
    body = admin.call("GET", "/v1/admin/rooms")
    _show(admin, body, body["rooms"])


@rooms_app.command("users")
def rooms_users(ctx: typer.Context, room: RoomArg, as_string: StrFlag = False) -> None:
    """The members in a room now (``--json``: the room as ``rooms list`` has it)."""
    wanted = _room(room, as_string)
    admin = _admin(ctx)
    rooms = admin.call("GET", "/v1/admin/rooms")["rooms"]
    # JSON keeps the kind: 123 == 123 but 123 != "123".
    found = [r for r in rooms if r.get("roomId") == wanted]
    if not found:
        _fail(f"room {room_label(wanted)} is not open")
    _show(admin, found[0], found[0]["members"])


@rooms_app.command("close")
def rooms_close(ctx: typer.Context, room: RoomArg, as_string: StrFlag = False) -> None:
    """Close a room: every member is told and removed; the session ends."""
    wanted = _room(room, as_string)
    admin = _admin(ctx)
    body = admin.call("POST", f"/v1/admin/{room_path(wanted)}/close", json={})
    _show(admin, body)


@rooms_app.command("remove")
def rooms_remove(
    ctx: typer.Context,
    room: RoomArg,
    user: Annotated[str, typer.Argument(help="The userId.")],
    as_string: StrFlag = False,
) -> None:
    """Remove one member from a room (their client is told why)."""
    wanted = _room(room, as_string)
    admin = _admin(ctx)
    path = f"/v1/admin/{room_path(wanted)}/users/{quote(user, safe='')}/remove"
    _show(admin, admin.call("POST", path, json={}))


@sessions_app.command("list")
def sessions_list(
    ctx: typer.Context,
    limit: Annotated[int, typer.Option("--limit", help="How many, newest first.", min=1)] = 50,
) -> None:
    """The app's sessions, newest first, open ones included."""
    admin = _admin(ctx)
    body = admin.call("GET", "/v1/admin/sessions", params={"limit": limit})
    _show(admin, body, body["sessions"])


@sessions_app.command("show")
def sessions_show(ctx: typer.Context, room_uuid: UuidArg) -> None:
    """One session: when it opened and closed, and who was in it."""
    admin = _admin(ctx)
    _show(admin, admin.call("GET", f"/v1/sessions/{quote(room_uuid, safe='')}"))


@sessions_app.command("recordings")
def sessions_recordings(ctx: typer.Context, room_uuid: UuidArg) -> None:
    """A session's recorded files."""
    admin = _admin(ctx)
    body = admin.call("GET", f"/v1/sessions/{quote(room_uuid, safe='')}/recordings")
    _show(admin, body, body["recordings"])


@sessions_app.command("download")
def sessions_download(
    ctx: typer.Context,
    room_uuid: UuidArg,
    recording_id: Annotated[str, typer.Argument(help="The recording's id.")],
    output: Annotated[
        Path | None,
        typer.Option("--output", "-o", help="Where to write it (default: <id>.mkv here)."),
    ] = None,
) -> None:
    """Download one recorded file (written whole, or not at all)."""
    admin = _admin(ctx)
    target = output or Path(f"{recording_id}.mkv")
    partial = target.with_name(target.name + ".part")
    path = f"/v1/sessions/{quote(room_uuid, safe='')}/recordings/{quote(recording_id, safe='')}"
    try:
        with admin.client() as http, http.stream("GET", path) as response:
            if response.status_code >= 400:
                response.read()
                _refused(response)
            size = 0
            with partial.open("wb") as out:
                for chunk in response.iter_bytes():
                    out.write(chunk)
                    size += len(chunk)
    except httpx.HTTPError as exc:
        partial.unlink(missing_ok=True)
        _fail(f"cannot download from {admin.server}: {exc}")
    partial.replace(target)
    body = {"path": str(target), "bytes": size}
    _show(admin, body)
