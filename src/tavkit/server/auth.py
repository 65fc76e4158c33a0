"""Who is calling: the credential headers, checked, turned into a :class:`Caller`.

Every REST call carries ``X-TAvKit-SdkAppId``, ``X-TAvKit-UserId`` and
``X-TAvKit-UserSig`` (and optionally ``X-TAvKit-PrivateMapKey``). Missing or
malformed headers are server 10005. A signature that does not verify is reported
the seed's way on ``enter`` -- avkit 70346 for the userSig, avkit 80/82/86/87 for
the privateMapKey, avkit 88 for an sdkAppId the server does not serve -- because
that is where the original kit reported them, and as server 10005 everywhere else.

The admin is the app's admin userId (``Settings.admin_user``) whose userSig is signed
with the admin key (:meth:`Settings.admin_key_of`) instead of the app key; the same
userId signed with the app key is an ordinary user, refused on admin routes. An app
with no admin key has no admin at all.

The headers are declared as FastAPI security schemes so ``/openapi.json`` and
``/docs`` show them; the schemes never reject anything themselves
(``auto_error=False``) so that every refusal has the seed's shape.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Annotated, Final

from fastapi import Depends
from fastapi.security import APIKeyHeader

from tavkit.auth import (
    Privilege,
    SignatureError,
    decode_sig,
    verify_private_map_key,
    verify_user_sig,
)
from tavkit.errors import AvkitCode, AvkitError, ServerCode, ServerError
from tavkit.protocol import USER_ID_RE, RoomId
from tavkit.server.context import ServerContext
from tavkit.server.settings import U32_MAX, AppConfig

__all__ = [
    "USER_ID_RE",
    "Caller",
    "HeaderCredentials",
    "authenticate",
    "credentials",
]

logger = logging.getLogger(__name__)

_MAX_SIG_CHARS: Final = 16 * 1024
_MAX_APP_ID_CHARS: Final = len(str(U32_MAX))
"""Checked before ``int()``, which refuses (with a ValueError) more than 4,300 digits."""

_app_header = APIKeyHeader(
    name="X-TAvKit-SdkAppId",
    scheme_name="SdkAppId",
    description="The app's sdkAppId (decimal).",
    auto_error=False,
)
_user_header = APIKeyHeader(
    name="X-TAvKit-UserId",
    scheme_name="UserId",
    description="The caller's userId: 1-64 characters of A-Z a-z 0-9 _ . @ -",
    auto_error=False,
)
_sig_header = APIKeyHeader(
    name="X-TAvKit-UserSig",
    scheme_name="UserSig",
    description="The caller's userSig (TLS-sig v2) for that sdkAppId and userId.",
    auto_error=False,
)
_pmk_header = APIKeyHeader(
    name="X-TAvKit-PrivateMapKey",
    scheme_name="PrivateMapKey",
    description="Optional privateMapKey; required on enter when the app requires it.",
    auto_error=False,
)


@dataclass(frozen=True)
class HeaderCredentials:
    """The credential headers, well-formed but not yet verified."""

    sdk_app_id: int
    user_id: str
    user_sig: str
    private_map_key: str | None


@dataclass(frozen=True)
class Caller:
    """A verified caller: the app, the user, and what they may do."""

    app: AppConfig
    user_id: str
    privileges: int
    """The privateMapKey's privilege map; 255 when no key was used."""
    is_admin: bool
    user_sig_expires_at: int | None = None
    """The last Unix second the userSig is valid (``TLS.time + TLS.expire``)."""
    private_map_key_expires_at: int | None = None
    """When a privateMapKey was checked: the earlier of its own end and its grant's."""

    @property
    def sdk_app_id(self) -> int:
        """The caller's app."""
        return self.app.sdk_app_id

    @property
    def expires_at(self) -> int | None:
        """When these credentials stop being valid: the earlier of the two ends above."""
        ends = [t for t in (self.user_sig_expires_at, self.private_map_key_expires_at) if t]
        return min(ends) if ends else None


def _unauthorised(message: str) -> ServerError:
    return ServerError(ServerCode.UNAUTHORISED, message)


def credentials(
    sdk_app_id: Annotated[str | None, Depends(_app_header)],
    user_id: Annotated[str | None, Depends(_user_header)],
    user_sig: Annotated[str | None, Depends(_sig_header)],
    private_map_key: Annotated[str | None, Depends(_pmk_header)],
) -> HeaderCredentials:
    """Read the headers; server 10005 when one is missing or malformed."""
    if not sdk_app_id or not user_id or not user_sig:
        missing = [
            name
            for name, value in (
                ("X-TAvKit-SdkAppId", sdk_app_id),
                ("X-TAvKit-UserId", user_id),
                ("X-TAvKit-UserSig", user_sig),
            )
            if not value
        ]
        raise _unauthorised(f"missing credential header {', '.join(missing)}")
    if (
        len(sdk_app_id) > _MAX_APP_ID_CHARS
        or not sdk_app_id.isascii()
        or not sdk_app_id.isdigit()
        or not 1 <= int(sdk_app_id) <= U32_MAX
    ):
        raise _unauthorised("X-TAvKit-SdkAppId must be a decimal number in 1..4294967295")
    if not USER_ID_RE.fullmatch(user_id):
        raise _unauthorised("X-TAvKit-UserId must be 1-64 characters of A-Z a-z 0-9 _ . @ -")
    if len(user_sig) > _MAX_SIG_CHARS or (
        private_map_key is not None and len(private_map_key) > _MAX_SIG_CHARS
    ):
        raise _unauthorised("a signature header is too long")
    return HeaderCredentials(int(sdk_app_id), user_id, user_sig, private_map_key or None)


def authenticate(
    ctx: ServerContext,
    creds: HeaderCredentials,
    *,
    entering_room: RoomId | None = None,
    admin: bool = False,
) -> Caller:
    """Verify ``creds``; with ``entering_room``, also the privateMapKey for that room.

    Raises the seed's codes described in the module docstring; with ``admin``, a
    caller who is not the app's admin (see the module docstring) is server 10005.
    """
    entering = entering_room is not None
    app = ctx.settings.app(creds.sdk_app_id)
    if app is None:
        if entering:
            raise AvkitError(
                AvkitCode.NO_PACKAGE, f"sdkAppId {creds.sdk_app_id} is not served here"
            )
        raise _unauthorised(f"sdkAppId {creds.sdk_app_id} is not served here")
    admin_key = ctx.settings.admin_key_of(app)
    is_admin = (
        admin_key is not None
        and creds.user_id == ctx.settings.admin_user
        and _signed_with(creds, app.sdk_app_id, admin_key)
    )
    if not is_admin:
        try:
            sig = verify_user_sig(
                creds.user_sig, sdk_app_id=app.sdk_app_id, key=app.key, user_id=creds.user_id
            )
        except SignatureError as exc:
            logger.info("refused userSig of %s/%s: %s", app.sdk_app_id, creds.user_id, exc.message)
            if entering:
                raise
            raise _unauthorised(exc.message) from None
    else:
        sig = decode_sig(creds.user_sig)  # verified with the admin key just above
    if admin and not is_admin:
        raise _unauthorised(_not_admin(ctx, app, creds.user_id))
    privileges = int(Privilege.ALL)
    pmk_expires_at: int | None = None
    if entering_room is not None and (
        app.require_private_map_key or creds.private_map_key is not None
    ):
        grant = verify_private_map_key(
            creds.private_map_key,
            sdk_app_id=app.sdk_app_id,
            key=app.key,
            user_id=creds.user_id,
            room_id=None if isinstance(entering_room, str) else entering_room,
            room_str=entering_room if isinstance(entering_room, str) else None,
        )
        grant.require(Privilege.ENTER)
        privileges = int(grant.privilege)
        assert creds.private_map_key is not None  # verify_private_map_key refuses None
        pmk_expires_at = min(grant.expire_at, decode_sig(creds.private_map_key).expires_at)
    return Caller(
        app=app,
        user_id=creds.user_id,
        privileges=privileges,
        is_admin=is_admin,
        user_sig_expires_at=sig.expires_at,
        private_map_key_expires_at=pmk_expires_at,
    )


def _signed_with(creds: HeaderCredentials, sdk_app_id: int, key: str) -> bool:
    """Whether the userSig verifies under ``key`` (the admin key: any failure means no)."""
    try:
        verify_user_sig(creds.user_sig, sdk_app_id=sdk_app_id, key=key, user_id=creds.user_id)
    except SignatureError:
        return False
    return True


def _not_admin(ctx: ServerContext, app: AppConfig, user_id: str) -> str:
    """Why a caller with a valid ordinary userSig is refused on an admin route."""
    if ctx.settings.admin_key_of(app) is None:
        return f"no admin key is configured for app {app.sdk_app_id}, so there is no admin"
    if user_id == ctx.settings.admin_user:
        return (
            f"this userSig of {user_id} is signed with the app key: the admin API needs"
            " one signed with the admin key"
        )
    return (
        f"only {ctx.settings.admin_user}, with a userSig signed with the admin key,"
        " may call the admin API"
    )


CredentialsDep = Annotated[HeaderCredentials, Depends(credentials)]
"""A route parameter that reads the credential headers."""
