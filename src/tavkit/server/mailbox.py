"""Small stand-ins for ``asyncio.Queue`` and ``asyncio.Event`` that every held socket has.

A server holding thousands of sockets keeps a queue of frames to send and a queue of
bus events for each, and a couple of flags. ``asyncio.Queue`` allocates four deques
up front (items, getters, putters, and the deque of its ``join`` event), about 3 KiB
on 64-bit CPython before anything is queued, and ``asyncio.Event`` one more (~760 B):
measured with tracemalloc, a sixth of a held socket's memory was such empty deques.

These hold nothing while idle (``__slots__``, no deque until a backlog forms) and cover
only what the sockets use: a bounded FIFO with one reader (:class:`Mailbox`) and a flag
tasks can wait on (:class:`Flag`). The semantics that matter are asyncio's own: an item
is never lost to a cancelled reader (it stays queued until a reader takes it), and
``put_nowait`` raises ``asyncio.QueueFull`` at the bound.
"""

from __future__ import annotations

import asyncio
from collections import deque
from typing import Generic, TypeVar

__all__ = ["Flag", "Mailbox"]

T = TypeVar("T")


class Mailbox(Generic[T]):
    """A bounded FIFO read by one task at a time; empty, it is a few machine words."""

    __slots__ = ("_items", "_maxsize", "_waiter")

    def __init__(self, maxsize: int) -> None:
        self._maxsize = maxsize
        self._items: deque[T] | None = None
        self._waiter: asyncio.Future[None] | None = None

    def qsize(self) -> int:
        """How many items are queued."""
        return 0 if self._items is None else len(self._items)

    def empty(self) -> bool:
        """Whether nothing is queued."""
        return not self._items

    def full(self) -> bool:
        """Whether a ``put_nowait`` would raise ``asyncio.QueueFull``."""
        return self.qsize() >= self._maxsize

    def put_nowait(self, item: T) -> None:
        """Queue ``item`` and wake the reader; ``asyncio.QueueFull`` at the bound."""
        items = self._items
        if items is None:
            items = self._items = deque()
        elif len(items) >= self._maxsize:
            raise asyncio.QueueFull
        items.append(item)
        waiter = self._waiter
        if waiter is not None and not waiter.done():
            waiter.set_result(None)

    async def get(self) -> T:
        """The oldest item, waiting for one if need be (cancellable; nothing is lost)."""
        while not self._items:
            if self._waiter is not None and not self._waiter.done():
                raise RuntimeError("a Mailbox has one reader at a time")
            waiter = self._waiter = asyncio.get_running_loop().create_future()
            try:
                await waiter
            finally:
                self._waiter = None
        items = self._items
        assert items is not None
        item = items.popleft()
        if not items:
            self._items = None  # an idle socket keeps no deque
        return item


class Flag:
    """A flag tasks can wait on, like ``asyncio.Event``, with nothing allocated until one waits."""

    __slots__ = ("_is_set", "_waiters")

    def __init__(self) -> None:
        self._is_set = False
        self._waiters: list[asyncio.Future[None]] | None = None

    def is_set(self) -> bool:
        """Whether the flag is up."""
        return self._is_set

    def set(self) -> None:
        """Raise the flag and wake every task waiting for it."""
        if self._is_set:
            return
        self._is_set = True
        waiters, self._waiters = self._waiters, None
        for waiter in waiters or ():
            if not waiter.done():
                waiter.set_result(None)

    def clear(self) -> None:
        """Lower the flag; later waits block until it is raised again."""
        self._is_set = False

    async def wait(self) -> None:
        """Return once the flag is up (at once if it already is)."""
        if self._is_set:
            return
        waiter = asyncio.get_running_loop().create_future()
        if self._waiters is None:
            self._waiters = []
        self._waiters.append(waiter)
        try:
            await waiter
        finally:
            if self._waiters is not None and waiter in self._waiters:
                self._waiters.remove(waiter)
                if not self._waiters:
                    self._waiters = None
