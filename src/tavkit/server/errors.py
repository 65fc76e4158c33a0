"""Every failure leaves the server as the seed's ``{module, errorCode, errorMsg}``.

Handlers map each kind of failure to its code and to ``http_status(code)``:

================================  ===================================================
failure                           answer
================================  ===================================================
``TAvKitError`` raised anywhere   its own module and code
a path/query value out of range   server 10004, naming the parameter
unknown route, wrong method       server 10001, HTTP 404/405 kept; ``Allow`` names
                                  every method of the path
a body over 64 KiB                server 10001 (:class:`GuardMiddleware`)
a replica that cannot serve now    server 10000, HTTP 503 and ``Retry-After``
(draining, its event bus away)     (:class:`~tavkit.errors.ServerUnavailable`)
anything unexpected               server 10000, logged with its trace and the quoted
                                  path, never sent
================================  ===================================================

Bodies are parsed by :func:`tavkit.server.http.json_body`, which raises the
seed's 10001/10003/10004 itself.
"""

from __future__ import annotations

import logging
from typing import Any, Final, Literal
from urllib.parse import parse_qsl

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.routing import Match, Mount
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from tavkit.errors import ServerCode, ServerError, ServerUnavailable, TAvKitError, http_status

__all__ = ["MAX_BODY_BYTES", "GuardMiddleware", "error_response", "install_error_handlers"]

logger = logging.getLogger(__name__)

MAX_BODY_BYTES: Final = 64 * 1024
"""Request bodies above this are refused with server 10001."""
_DRAIN_LIMIT: Final = 1024 * 1024
_METHODS: Final = ("DELETE", "GET", "HEAD", "OPTIONS", "PATCH", "POST", "PUT")


def error_response(exc: TAvKitError, *, status: int | None = None, **headers: str) -> JSONResponse:
    """The seed-shaped response for ``exc`` (status from ``http_status`` unless given;
    a :class:`ServerUnavailable` answers 503 with ``Retry-After``)."""
    if isinstance(exc, ServerUnavailable) and status is None:
        status = 503
        headers.setdefault("Retry-After", str(exc.RETRY_AFTER_S))
    return JSONResponse(
        exc.to_dict(),
        status_code=status if status is not None else http_status(exc.code),
        headers=headers or None,
    )


async def _on_tavkit_error(_request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, TAvKitError)
    return error_response(exc)


async def _on_validation_error(_request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, RequestValidationError)
    problems = []
    for item in exc.errors():
        where = ".".join(str(part) for part in item.get("loc", ())[1:]) or "request"
        problems.append(f"{where}: {item.get('msg', 'invalid')}")
    message = "; ".join(problems) or "invalid parameter"
    return error_response(ServerError(ServerCode.INVALID_PARAMETER, message))


async def _on_http_error(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, StarletteHTTPException)
    headers = dict(exc.headers or {})
    if exc.status_code == 404:
        message = f"no such resource: {request.method} {request.url.path}"
    elif exc.status_code == 405:
        message = f"method {request.method} is not allowed on {request.url.path}"
        allowed = _allowed_methods(request.app, request.scope)
        if allowed:
            headers["Allow"] = allowed
    else:
        message = str(exc.detail)
    return error_response(
        ServerError(ServerCode.BAD_REQUEST, message), status=exc.status_code, **headers
    )


def _allowed_methods(app: Any, scope: Scope) -> str:
    """Every method some route of ``app`` answers at ``scope``'s path, for ``Allow``.

    Starlette's 405 names only the methods of the first route that matched the path,
    but ``GET`` and ``PUT`` of one path are two routes; RFC 9110 wants them all. Each
    method is tried against the routes as the router would (mounted static files
    aside: they answer any method at their prefix and name their own).
    """
    routes = [
        route
        for route in getattr(getattr(app, "router", None), "routes", ())
        if not isinstance(route, Mount)
    ]
    allowed = []
    for method in _METHODS:
        probe = {**scope, "method": method}
        if any(route.matches(probe)[0] is Match.FULL for route in routes):
            allowed.append(method)
    return ", ".join(allowed)


def install_error_handlers(app: FastAPI) -> None:
    """Register the handlers and :class:`GuardMiddleware` on ``app``."""
    app.add_exception_handler(TAvKitError, _on_tavkit_error)
    app.add_exception_handler(RequestValidationError, _on_validation_error)
    app.add_exception_handler(StarletteHTTPException, _on_http_error)
    app.add_middleware(GuardMiddleware)


def repeated_parameter(query_string: bytes) -> str | None:
    """The first query parameter named twice in ``query_string`` (decoded), else None.

    No operation takes a list in its query, and a scalar given twice is ambiguous: the
    framework reads the last value, a proxy or a log reader may read the first (the
    old trick of hiding a value behind another). So it is refused rather than picked.
    """
    seen: set[str] = set()
    for name, _ in parse_qsl(query_string.decode("latin-1"), keep_blank_values=True):
        if name in seen:
            return name
        seen.add(name)
    return None


class GuardMiddleware:
    """Caps request bodies at 64 KiB and turns an unhandled exception into server 10000;
    refuses a query parameter given twice (server 10004, :func:`repeated_parameter`).

    The body is read up front (at most 64 KiB of it) and replayed to the app, so the
    cap holds for chunked uploads with no ``Content-Length`` too. An exception that
    escapes after the response has started can only be logged, and is re-raised.
    """

    def __init__(self, app: ASGIApp, max_body: int = MAX_BODY_BYTES) -> None:
        self.app = app
        self.max_body = max_body

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        repeated = repeated_parameter(scope.get("query_string", b""))
        if repeated is not None:
            twice = ServerError(
                ServerCode.INVALID_PARAMETER,
                f"{repeated[:64]!r}: a query parameter may be given once",
            )
            await error_response(twice)(scope, receive, send)
            return
        started = False

        async def tracked_send(message: Message) -> None:
            nonlocal started
            if message["type"] == "http.response.start":
                started = True
            await send(message)

        outcome, body = await self._read_body(scope, receive)
        if outcome == "gone":
            return
        if outcome == "too-big":
            too_big = ServerError(
                ServerCode.BAD_REQUEST, f"the request body is over {self.max_body} bytes"
            )
            await error_response(too_big, Connection="close")(scope, receive, send)
            return
        replayed = False

        async def replay() -> Message:
            nonlocal replayed
            if not replayed:
                replayed = True
                return {"type": "http.request", "body": body, "more_body": False}
            return await receive()

        try:
            await self.app(scope, replay, tracked_send)
        except Exception:
            # Quoted (repr): a path is client text, and a %0A in it must not forge a log line.
            logger.exception("unhandled error in %s %r", scope.get("method"), scope.get("path"))
            if started:
                raise
            internal = ServerError(ServerCode.INTERNAL, "internal server error")
            await error_response(internal)(scope, receive, send)

    async def _read_body(
        self, scope: Scope, receive: Receive
    ) -> tuple[Literal["ok", "too-big", "gone"], bytes]:
        """Read the whole body: ``ok`` with it, ``too-big`` past the cap, ``gone`` if the
        client disconnected first.

        An oversized body is still read (and dropped) up to ``_DRAIN_LIMIT``, so the
        client, still sending, gets the refusal instead of a reset connection.
        """
        declared = next(
            (value for name, value in scope.get("headers", ()) if name == b"content-length"), b""
        )
        too_big = declared.isdigit() and int(declared) > self.max_body
        if too_big and int(declared) > _DRAIN_LIMIT:
            return "too-big", b""
        chunks: list[bytes] = []
        size = 0
        while True:
            message: dict[str, Any] = dict(await receive())
            if message["type"] != "http.request":
                return "gone", b""
            chunk = message.get("body", b"")
            size += len(chunk)
            if size > self.max_body:
                too_big = True
                chunks.clear()
            if not too_big:
                chunks.append(chunk)
            if not message.get("more_body", False) or size > _DRAIN_LIMIT:
                return ("too-big", b"") if too_big else ("ok", b"".join(chunks))
