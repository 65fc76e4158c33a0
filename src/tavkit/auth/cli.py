"""``tavkit usersig``, ``tavkit privatemapkey`` and ``tavkit sig``: mint, check and inspect.

Exit status is the contract scripts rely on: 0 valid, 1 refused or undecodable
(the reason and the seed's code on stderr), 2 a usage mistake. The secret key may
come from ``TAVKIT_KEY`` so it stays out of shell history and ``ps``.

``tavkit usersig admin`` mints the admin's userSig (what the dashboard and the admin
API take): the admin userId signed with the *admin* key, read from
``TAVKIT_ADMIN_KEY`` (or ``--admin-key``/``--key``), never from ``TAVKIT_KEY`` -- a
userSig of the admin userId signed with the app key is an ordinary user's.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Annotated, Any, NoReturn

import typer

from tavkit.auth.grants import parse_privilege, privilege_names
from tavkit.auth.signature import (
    DEFAULT_EXPIRE,
    PrivateMapKey,
    SignatureError,
    decode_sig,
    gen_private_map_key,
    gen_user_sig,
    verify_private_map_key,
    verify_user_sig,
)

__all__ = ["privatemapkey_app", "sig_app", "usersig_app"]

usersig_app = typer.Typer(
    help="Mint and verify userSigs (who a user is).", no_args_is_help=True, add_completion=False
)
privatemapkey_app = typer.Typer(
    help="Mint and verify privateMapKeys (which room, with which privileges).",
    no_args_is_help=True,
    add_completion=False,
)
sig_app = typer.Typer(
    help="Look inside a userSig or privateMapKey without its key.",
    no_args_is_help=True,
    add_completion=False,
)

# Options shared by several commands.
SdkAppId = Annotated[int, typer.Option("--sdk-app-id", help="The app's sdkAppId.", min=1)]
Key = Annotated[
    str,
    typer.Option("--key", envvar="TAVKIT_KEY", help="The app's secret key.", show_default=False),
]
UserId = Annotated[str, typer.Option("--user-id", help="The userId the signature names.")]
Expire = Annotated[
    int, typer.Option("--expire", help="Lifetime in seconds (default 180 days).", min=0)
]
IssueTime = Annotated[
    int | None,
    typer.Option("--time", help="Issue time, Unix seconds (default: now).", min=0),
]
Now = Annotated[
    float | None,
    typer.Option("--now", help="Check as if it were this Unix time (default: now)."),
]
RoomIdOption = Annotated[int | None, typer.Option("--room-id", help="Numeric room id.", min=1)]
StrRoomIdOption = Annotated[
    str | None,
    typer.Option("--room-str", "--str-room-id", help="String room id (TRTC's strRoomId)."),
]


@usersig_app.command("gen")
def usersig_gen(
    sdk_app_id: SdkAppId,
    key: Key,
    user_id: UserId,
    expire: Expire = DEFAULT_EXPIRE,
    issue_time: IssueTime = None,
) -> None:
    """Print a new userSig."""
    typer.echo(_or_usage(lambda: gen_user_sig(sdk_app_id, key, user_id, expire, now=issue_time)))


ADMIN_EXPIRE = 12 * 3600
"""Default lifetime of an admin userSig: a working day, not the 180 days of a user's."""


@usersig_app.command("admin")
def usersig_admin(
    sdk_app_id: SdkAppId,
    admin_key: Annotated[
        str,
        typer.Option(
            "--admin-key",
            "--key",
            envvar="TAVKIT_ADMIN_KEY",
            help="The server's (or the app's) admin key.",
            show_default=False,
        ),
    ],
    user_id: Annotated[
        str, typer.Option("--user-id", help="The server's admin userId.")
    ] = "administrator",
    expire: Annotated[
        int, typer.Option("--expire", help="Lifetime in seconds (default 12 hours).", min=0)
    ] = ADMIN_EXPIRE,
    issue_time: IssueTime = None,
) -> None:
    """Print the admin's userSig: the admin userId signed with the admin key."""
    typer.echo(
        _or_usage(lambda: gen_user_sig(sdk_app_id, admin_key, user_id, expire, now=issue_time))
    )


@usersig_app.command("verify")
def usersig_verify(
    sig: Annotated[str, typer.Argument(help="The userSig to check.", show_default=False)],
    sdk_app_id: SdkAppId,
    key: Key,
    user_id: UserId,
    now: Now = None,
) -> None:
    """Exit 0 if SIG is a valid userSig for the user and app, else 1 with the reason."""
    try:
        doc = verify_user_sig(sig, sdk_app_id=sdk_app_id, key=key, user_id=user_id, now=now)
    except SignatureError as exc:
        _refuse(exc)
    typer.echo(f"OK: userSig of {user_id!r} in app {sdk_app_id}, expires {_iso(doc.expires_at)}")


@privatemapkey_app.command("gen")
def privatemapkey_gen(
    sdk_app_id: SdkAppId,
    key: Key,
    user_id: UserId,
    privilege: Annotated[
        str,
        typer.Option(
            "--privilege", help="A number (255, 0xff) or names (ALL, VIEWER, enter,recv_audio)."
        ),
    ],
    room_id: RoomIdOption = None,
    room_str: StrRoomIdOption = None,
    expire: Expire = DEFAULT_EXPIRE,
    issue_time: IssueTime = None,
) -> None:
    """Print a new privateMapKey for one room (give --room-id or --room-str)."""
    _one_room(room_id, room_str)
    try:
        bits = parse_privilege(privilege)
    except ValueError as exc:
        raise typer.BadParameter(str(exc), param_hint="--privilege") from exc
    typer.echo(
        _or_usage(
            lambda: gen_private_map_key(
                sdk_app_id,
                key,
                user_id,
                room_id=room_id,
                room_str=room_str,
                privilege=bits,
                expire=expire,
                now=issue_time,
            )
        )
    )


@privatemapkey_app.command("verify")
def privatemapkey_verify(
    pmk: Annotated[str, typer.Argument(metavar="KEY", help="The privateMapKey to check.")],
    sdk_app_id: SdkAppId,
    key: Key,
    user_id: UserId,
    room_id: RoomIdOption = None,
    room_str: StrRoomIdOption = None,
    now: Now = None,
) -> None:
    """Exit 0 if KEY lets the user into the room, else 1 with the reason."""
    _one_room(room_id, room_str)
    try:
        grant = verify_private_map_key(
            pmk,
            sdk_app_id=sdk_app_id,
            key=key,
            user_id=user_id,
            room_id=room_id,
            room_str=room_str,
            now=now,
        )
    except SignatureError as exc:
        _refuse(exc)
    names = ",".join(privilege_names(grant.privilege)) or "none"
    typer.echo(
        f"OK: privateMapKey of {user_id!r} for room {grant.room!r}, privileges {names}"
        f" ({int(grant.privilege)}), expires {_iso(grant.expire_at)}"
    )


@sig_app.callback()
def _sig_group() -> None:
    """Look inside a userSig or privateMapKey without its key."""


@sig_app.command("inspect")
def sig_inspect(
    sig: Annotated[str, typer.Argument(help="A userSig or privateMapKey.")],
) -> None:
    """Print SIG's decoded document as JSON; nothing is verified."""
    try:
        doc = decode_sig(sig)
    except SignatureError as exc:
        typer.echo(f"cannot decode: {exc.detail}", err=True)
        raise typer.Exit(1) from exc
    out: dict[str, Any] = {
        "document": doc.raw,
        "expiresAt": doc.expires_at,
        "expiresAtIso": _iso(doc.expires_at),
    }
    if doc.userbuf is not None:
        out["userbuf"] = _describe_userbuf(doc.userbuf)
    typer.echo(json.dumps(out, indent=2, ensure_ascii=False))


def _describe_userbuf(userbuf: bytes) -> dict[str, Any]:
    """The privateMapKey record in readable form, or its hex when it is not one."""
    try:
        grant = PrivateMapKey.parse(userbuf)
    except SignatureError as exc:
        return {"hex": userbuf.hex(), "error": exc.detail}
    return {
        "ver": grant.ver,
        "account": grant.account,
        "sdkAppId": grant.sdk_app_id,
        "roomId": grant.room_id,
        "roomStr": grant.room_str,
        "expireAt": grant.expire_at,
        "expireAtIso": _iso(grant.expire_at),
        "privilege": int(grant.privilege),
        "privilegeNames": privilege_names(grant.privilege),
        "accountType": grant.account_type,
        "hex": userbuf.hex(),
    }


def _refuse(exc: SignatureError) -> NoReturn:
    """Report a refusal the way scripts and people both read it, then exit 1."""
    codes = f"{exc.module.value} {exc.error_code}"
    if exc.vendor_code is not None:
        codes += f"; vendor {exc.vendor_code}"
    typer.echo(f"invalid: {exc.failure.value} ({codes}) {exc.message}", err=True)
    raise typer.Exit(1)


def _one_room(room_id: int | None, room_str: str | None) -> None:
    if (room_id is None) == (room_str is None):
        raise typer.BadParameter("give exactly one of --room-id and --room-str")


def _or_usage(make: Callable[[], str]) -> str:
    """Run a generator, turning its argument checks into a usage error (exit 2)."""
    try:
        return make()
    except (ValueError, TypeError) as exc:
        raise typer.BadParameter(str(exc)) from exc


def _iso(seconds: float) -> str:
    try:
        return datetime.fromtimestamp(seconds, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    except (OverflowError, OSError, ValueError):
        return str(seconds)
