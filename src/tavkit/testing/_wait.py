"""Polling with a deadline, the one way the testing helpers wait for a condition."""

from __future__ import annotations

import asyncio
import os
from collections.abc import Callable

__all__ = ["TIMEOUT", "until"]

TIMEOUT = float(os.environ.get("TAVKIT_TEST_TIMEOUT", "20"))
"""One unit of patience (s), scaled by ``TAVKIT_TEST_TIMEOUT`` for slow machines, as
websockets scales its test timeouts."""


async def until(condition: Callable[[], bool], what: str, within: float = TIMEOUT) -> None:
    """Poll ``condition`` until it holds; fail naming ``what`` if it does not within ``within`` s.

    Polling, not an event: the conditions read counters of several objects at once.
    """
    try:
        async with asyncio.timeout(within):
            while not condition():  # noqa: ASYNC110
                await asyncio.sleep(0.05)
    except TimeoutError:
        raise AssertionError(f"not within {within:g} s: {what}") from None
