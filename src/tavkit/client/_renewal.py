"""Credentials that end during a call: ask the application, send ``renew``, apply ``renewed``.

The server sends ``expiring`` ahead of the end of the member's userSig (or
privateMapKey) with a ``deadline``; a member that has not renewed by then is removed
with reason ``expired`` (``docs/protocol.md`` section 2). :class:`Renewal` answers
``expiring`` by calling the listener's ``on_user_sig_expired()`` (TRTC's
``onUserSigExpired``), which returns -- or, as a coroutine, resolves to -- either a
new userSig, or a ``(userSig, privateMapKey)`` pair, or ``None`` to let the
membership end. A userSig alone is sent with the privateMapKey the call already
has, so an app that requires keys need not mint a key to renew a signature.

:meth:`Renewal.renew` is also the kit's public ``renew``: it sends the frame and
waits for the server's answer, matched by the frame's ``id``. The accepted
credentials then replace the old ones everywhere the kit uses them (the REST calls,
the log reporter, the socket token for resumes, the ICE servers for new peer
connections) through ``on_renewed``. No secret is ever logged.

A user's room socket and user socket carry the same userSig, so the server warns both
at about the same time: the listener is asked once (:func:`_ask_once`), and each
socket sends the answer with its own key.
"""

from __future__ import annotations

import asyncio
import inspect
import itertools
import logging
import weakref
from collections.abc import Awaitable, Callable, Coroutine
from dataclasses import dataclass
from typing import Any, Final, Protocol

from tavkit.errors import HttpCode, HttpError, ServerCode, ServerError, TAvKitError
from tavkit.protocol import ClientMessage, ErrorFrame, Expiring, Renew, Renewed, ServerMessage

__all__ = ["Renewal", "renewal_of"]

logger = logging.getLogger("tavkit.client.kit")

_ids = itertools.count(1)

NewCredentials = tuple[str, str | None]

SHARED_FOR: Final = 5.0
"""Seconds an answer of the listener is shared after it came (it is shared while
the question is open too)."""


@dataclass
class _Question:
    """One question to a listener: its answer, and when the answer came (loop time)."""

    answer: asyncio.Future[NewCredentials | None]
    settled_at: float | None = None


_questions: weakref.WeakKeyDictionary[object, _Question] = weakref.WeakKeyDictionary()


class Socket(Protocol):
    """Where ``renew`` goes: the room's signaling socket or the user socket."""

    async def send(self, message: ClientMessage, /) -> None:
        """Send one frame."""


def renewal_of(result: object) -> NewCredentials | None:
    """What ``on_user_sig_expired`` returned, as ``(userSig, privateMapKey)`` or None.

    Raises ``TypeError`` for anything but a non-empty string, a pair of a string and a
    string or None, or None.
    """
    if result is None:
        return None
    if isinstance(result, str) and result.strip():
        return result.strip(), None
    if isinstance(result, tuple) and len(result) == 2:
        sig, pmk = result
        if isinstance(sig, str) and sig.strip() and (pmk is None or isinstance(pmk, str)):
            return sig.strip(), (pmk.strip() or None) if pmk is not None else None
    raise TypeError(
        "on_user_sig_expired must return a userSig, a (userSig, privateMapKey) pair or None,"
        f" not {type(result).__name__}"
    )


class Renewal:
    """One socket's renewals: ``expiring`` in, the listener asked, ``renew`` out, answers in.

    ``socket()`` is the current socket (None between memberships): a room's signaling
    socket or a user socket (whose ``renewed`` has no ICE servers nor token);
    ``listener()`` the application's listener; ``current_key()`` the privateMapKey in
    use; ``on_renewed(answer, user_sig, private_map_key)`` applies accepted credentials;
    ``report`` hands an error to ``on_error``; ``spawn`` runs a task the kit owns.
    ``timeout`` bounds the wait for the server's answer (seconds).
    """

    def __init__(
        self,
        *,
        socket: Callable[[], Socket | None],
        listener: Callable[[], object | None],
        current_key: Callable[[], str | None],
        on_renewed: Callable[[Renewed, str, str | None], None],
        report: Callable[[TAvKitError], None],
        spawn: Callable[[Coroutine[Any, Any, Any]], Any],
        timeout: float,
    ) -> None:
        self._socket = socket
        self._listener = listener
        self._current_key = current_key
        self._on_renewed = on_renewed
        self._report = report
        self._spawn = spawn
        self._timeout = timeout
        self._waiting: dict[str, asyncio.Future[Renewed]] = {}
        self._asking = False
        #: The last ``expiring`` the server sent, if any (its end and deadline).
        self.expiring: Expiring | None = None
        #: How many renewals the server accepted.
        self.renewed = 0

    def receive(self, message: ServerMessage) -> bool:
        """Take a server frame; whether it was ours alone (``expiring``, ``renewed``, errors)."""
        if isinstance(message, Expiring):
            self.expiring = message
            logger.info(
                "credentials end at %.0f; renew before %.0f", message.expires_at, message.deadline
            )
            if not self._asking:
                self._asking = True
                self._spawn(self._ask())
            return True
        if isinstance(message, Renewed):
            waiter = self._waiting.pop(message.ref or "", None)
            if waiter is not None and not waiter.done():
                waiter.set_result(message)
            return True
        if isinstance(message, ErrorFrame) and message.ref in self._waiting:
            waiter = self._waiting.pop(message.ref)
            if not waiter.done():
                waiter.set_exception(_error_of(message))
            return True
        return False

    async def renew(self, user_sig: str, private_map_key: str | None = None) -> Renewed:
        """Send ``renew`` and return the server's ``renewed``; raise its refusal.

        Without ``private_map_key`` the key in use (if any) goes along. Raises
        :class:`~tavkit.errors.AvkitError` (70346, 80/82/86/87) when the server refuses
        the credentials, :class:`~tavkit.errors.HttpError` (10000) when no answer came
        in time, ``RuntimeError`` outside a call.
        """
        socket = self._socket()
        if socket is None:
            raise RuntimeError("renew() needs a call in progress")
        key = private_map_key if private_map_key is not None else self._current_key()
        frame_id = f"renew-{next(_ids)}"
        waiter: asyncio.Future[Renewed] = asyncio.get_running_loop().create_future()
        self._waiting[frame_id] = waiter
        try:
            await socket.send(Renew(user_sig, key, id=frame_id))
            async with asyncio.timeout(self._timeout):
                answer = await waiter
        except TimeoutError:
            raise HttpError(HttpCode.NETWORK, "no answer to renew in time") from None
        finally:
            self._waiting.pop(frame_id, None)
        self.renewed += 1
        logger.info("credentials renewed until %.0f", answer.expires_at)
        self._on_renewed(answer, user_sig, key)
        return answer

    async def _ask(self) -> None:
        """Ask the listener for new credentials and send them; report what goes wrong."""
        try:
            callback = getattr(self._listener(), "on_user_sig_expired", None)
            if callback is None:
                logger.info("the listener has no on_user_sig_expired: the membership will end")
                return
            fresh = await _ask_once(self._listener(), callback)
            if fresh is None:
                logger.info("on_user_sig_expired gave nothing: the membership will end")
                return
            try:
                await self.renew(*fresh)
            except TAvKitError as exc:
                self._report(exc)
        finally:
            self._asking = False


async def _ask_once(listener: object, callback: Callable[[], object]) -> NewCredentials | None:
    """The listener's answer: asked now, or the one another socket asked for just now."""
    loop = asyncio.get_running_loop()
    try:
        question = _questions.get(listener)
    except TypeError:  # a listener that cannot be weakly referenced is asked every time
        return await _answer(callback)
    if (
        question is not None
        and question.answer.get_loop() is loop
        and (question.settled_at is None or loop.time() - question.settled_at < SHARED_FOR)
    ):
        try:
            return await asyncio.shield(question.answer)
        except asyncio.CancelledError:
            if not question.answer.cancelled():
                raise  # this socket is going away
            # The socket that asked went away before the answer came: ask from here.
    question = _Question(loop.create_future())
    _questions[listener] = question
    try:
        fresh = await _answer(callback)
    except BaseException:
        question.answer.cancel()
        if _questions.get(listener) is question:
            del _questions[listener]
        raise
    question.settled_at = loop.time()
    question.answer.set_result(fresh)
    return fresh


async def _answer(callback: Callable[[], object]) -> NewCredentials | None:
    """Call ``on_user_sig_expired`` (awaiting a coroutine's result); None if it raised."""
    try:
        result = callback()
        if inspect.isawaitable(result):
            result = await _awaited(result)
        return renewal_of(result)
    except Exception:
        logger.exception("on_user_sig_expired raised")
        return None


async def _awaited(result: Awaitable[Any]) -> Any:
    return await result


def _error_of(frame: ErrorFrame) -> TAvKitError:
    try:
        return frame.to_error()
    except ValueError:
        return ServerError(ServerCode.INTERNAL, frame.error_msg)
