"""Shared HTTP pieces for every route module: the seed's error body, path types, bodies.

Bodies are read by :func:`json_body` rather than by FastAPI's model binding, so each
malformed body gets the seed's code (10003 not JSON, 10001 not an object, 10004 a bad
field) whatever its Content-Type; route modules document their answers with
pydantic models in ``/openapi.json`` and :func:`error_responses`.
"""

from __future__ import annotations

import functools
import inspect
import re
from collections.abc import Awaitable, Callable
from typing import Annotated, Any, Final, Literal, TypeVar, get_type_hints

from fastapi import APIRouter, Depends, Request
from fastapi import Path as PathParam
from pydantic import BaseModel, Field
from starlette.convertors import Convertor, register_url_convertor

from tavkit.errors import ServerCode, ServerError
from tavkit.protocol import RoomId, load_json, parse_str_room_id
from tavkit.server.auth import USER_ID_RE
from tavkit.server.settings import U32_MAX

__all__ = [
    "COMMON_ERRORS",
    "EMPTY_BODY",
    "ErrorBody",
    "MemberBody",
    "RoomInPath",
    "RoomUuidResponse",
    "SessionUuid",
    "UserIdParam",
    "body_with",
    "error_responses",
    "json_body",
    "room_routes",
    "socket_url",
]


class _AnyText(Convertor[str]):
    """A path segment matching anything, even nothing, newlines or a decoded ``/``.

    Starlette's ``path`` convertor stops at a newline (its ``.`` is not DOTALL), so a
    string room with a ``%0A`` in it would be a 404 instead of server 10004.
    """

    regex = r"[\s\S]*"

    def convert(self, value: str) -> str:
        return value

    def to_string(self, value: str) -> str:
        return value


register_url_convertor("strroom", _AnyText())

_Handler = TypeVar("_Handler", bound=Callable[..., Awaitable[Any]])

UUID_PATTERN: Final = r"^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$"


def _numeric_room(
    room_id: Annotated[
        int,
        PathParam(alias="roomId", ge=1, le=U32_MAX, description="A numeric room: 1..2^32-1."),
    ],
) -> RoomId:
    return room_id


def _string_room(
    str_room_id: Annotated[
        str,
        PathParam(
            alias="strRoomId",
            description=(
                "A string room (TRTC's strRoomId), percent-encoded: 1-64 letters, digits"
                " and _-+=.:@!#$%&()*;<>?[]^{}|~. Not the numeric room with the same digits."
            ),
        ),
    ],
) -> RoomId:
    return parse_str_room_id(str_room_id)


RoomInPath = Annotated[RoomId, Depends(_numeric_room)]
"""A route parameter naming the room of the path; see :func:`room_routes`."""
_STRING_ROOM_IN_PATH = Annotated[RoomId, Depends(_string_room)]


def room_routes(
    router: APIRouter, method: str, *, path: str, prefix: str = "", **options: Any
) -> Callable[[_Handler], _Handler]:
    """Register a handler at ``/rooms/{roomId}…`` and at ``/str-rooms/{strRoomId}…``.

    ``path`` is the part after the room (``"/enter"``), ``prefix`` the part before
    (``"/admin"``). The handler takes one :data:`RoomInPath` parameter and gets an
    ``int`` on the first path and a ``str`` on the second, so ``123`` and ``"123"``
    can never name the same room: the URL says which kind it is, not the characters.
    The string segment matches anything, even nothing or a decoded ``/``, so that a
    bad string room is server 10004 with the rule it breaks rather than a 404. The
    second registration is the same handler under a signature whose room parameter
    depends on the string segment instead (FastAPI reads ``__signature__``).
    """

    def register(handler: _Handler) -> _Handler:
        router.api_route(f"{prefix}/rooms/{{roomId}}{path}", methods=[method], **options)(handler)
        hints = get_type_hints(handler, include_extras=True)
        signature = inspect.signature(handler)
        params = [
            param.replace(
                annotation=_STRING_ROOM_IN_PATH if hints[name] == RoomInPath else hints[name]
            )
            for name, param in signature.parameters.items()
        ]
        if sum(hints[name] == RoomInPath for name in signature.parameters) != 1:
            raise TypeError(f"{handler.__name__} must take exactly one RoomInPath parameter")

        @functools.wraps(handler)
        async def string_room(*args: Any, **kwargs: Any) -> Any:
            return await handler(*args, **kwargs)

        string_room.__signature__ = signature.replace(  # type: ignore[attr-defined]
            parameters=params, return_annotation=hints.get("return", Any)
        )
        string_room.__name__ = f"{handler.__name__}_str_room"
        router.api_route(
            f"{prefix}/str-rooms/{{strRoomId:strroom}}{path}", methods=[method], **options
        )(string_room)
        return handler

    return register


SessionUuid = Annotated[
    str,
    PathParam(alias="uuid", pattern=UUID_PATTERN, description="A session UUID, lowercase."),
]
UserIdParam = Annotated[
    str,
    PathParam(alias="userId", pattern=f"^{USER_ID_RE.pattern}$", description="A userId."),
]


class ErrorBody(BaseModel):
    """Every error: the seed's shape."""

    module: Literal["trtc", "server", "http", "avkit"]
    errorCode: int
    errorMsg: str


class MemberBody(BaseModel):
    """A live member."""

    userId: str
    joinedAt: float
    muted: bool
    camera: bool
    publish: int = Field(
        default=84,
        description="The member's send bits (4 audio, 16 video, 64 sub-stream); 0: audience.",
    )


class RoomUuidResponse(BaseModel):
    """The session an action applied to."""

    roomUuid: str


def error_responses(*statuses: int) -> dict[int | str, dict[str, Any]]:
    """OpenAPI ``responses`` naming each status with the seed's error body."""
    return {status: {"model": ErrorBody} for status in statuses}


COMMON_ERRORS = error_responses(400, 401, 422, 503)
"""What any authenticated route may answer besides its success."""


async def json_body(request: Request) -> dict[str, Any] | None:
    """The request's JSON object, None when there is no body (zero bytes).

    Server 10003 when the body is not JSON at all, 10001 when it is JSON but not an
    object, 10004 when it is JSON the server would not be able to store and read back
    (nested over :data:`~tavkit.protocol.MAX_JSON_DEPTH`, a lone surrogate, a number
    out of range; see :func:`~tavkit.protocol.load_json`); size was already capped by
    the guard middleware.
    """
    raw = await request.body()
    if not raw:  # whitespace alone is not "no body": it is not JSON either (10003)
        return None
    data = load_json(raw, "body")
    if not isinstance(data, dict):
        raise ServerError(ServerCode.BAD_REQUEST, "the body must be a JSON object")
    return data


def body_with(fields: dict[str, Any]) -> dict[str, Any]:
    """OpenAPI ``requestBody`` for a JSON object with ``fields`` (a JSON schema)."""
    return {
        "requestBody": {
            "content": {"application/json": {"schema": fields}},
            "required": False,
        }
    }


EMPTY_BODY = body_with({"type": "object", "properties": {}})
"""The OpenAPI body of a POST that takes none (an empty object is accepted)."""


def socket_url(request: Request, public_url: str | None) -> str:
    """The absolute URL of the signaling socket, as this client reaches the server.

    Under a mount (or uvicorn's ``--root-path``) the socket lives below that prefix too,
    which Starlette keeps in the scope's ``root_path``.
    """
    if public_url:
        base = public_url.rstrip("/")
    else:
        root = str(request.scope.get("root_path", "")).rstrip("/")
        base = f"{request.url.scheme}://{request.url.netloc}{root}"
    return re.sub(r"^http", "ws", base) + "/v1/ws"
