"""The sockets' small queue and flag behave as the asyncio ones they replace."""

from __future__ import annotations

import asyncio

import pytest

from tavkit.server.mailbox import Flag, Mailbox


async def test_a_mailbox_hands_items_over_in_order_and_refuses_past_its_bound() -> None:
    """FIFO order, a waiting reader woken by a put, and QueueFull at the bound."""
    box: Mailbox[int] = Mailbox(2)
    reader = asyncio.create_task(box.get())
    await asyncio.sleep(0)
    box.put_nowait(1)
    assert await reader == 1
    box.put_nowait(2)
    box.put_nowait(3)
    assert box.full() and box.qsize() == 2
    with pytest.raises(asyncio.QueueFull):
        box.put_nowait(4)
    assert [await box.get(), await box.get()] == [2, 3]
    assert box.empty()


async def test_an_item_put_for_a_cancelled_reader_is_not_lost() -> None:
    """A reader cancelled after its item arrived leaves the item for the next read."""
    box: Mailbox[str] = Mailbox(4)
    reader = asyncio.create_task(box.get())
    await asyncio.sleep(0)
    box.put_nowait("frame")
    reader.cancel()  # before it could run again and take the item
    with pytest.raises(asyncio.CancelledError):
        await reader
    assert await asyncio.wait_for(box.get(), 1) == "frame"


async def test_a_flag_wakes_every_waiter_and_can_be_lowered_again() -> None:
    """set() wakes all waiters; clear() makes the next wait block; a cancelled wait is dropped."""
    flag = Flag()
    waiters = [asyncio.create_task(flag.wait()) for _ in range(3)]
    cancelled = asyncio.create_task(flag.wait())
    await asyncio.sleep(0)
    cancelled.cancel()
    await asyncio.sleep(0)
    flag.set()
    await asyncio.wait_for(asyncio.gather(*waiters), 1)
    assert flag.is_set() and cancelled.cancelled()
    flag.clear()
    late = asyncio.create_task(flag.wait())
    await asyncio.sleep(0.01)
    assert not late.done()
    flag.set()
    await asyncio.wait_for(late, 1)
