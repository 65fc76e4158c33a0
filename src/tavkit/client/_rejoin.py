"""Entering the room again after the server has forgotten us (a long outage).

The socket resumes by itself while the server still holds our place
(:mod:`tavkit.client.session`); once the place is gone (the token refused, or the
member timed out) the kit must ``enter`` again, as a new membership. The network may
still be down then, so :func:`enter_again` keeps trying through network errors, with
backoff, for a while; a refusal from the server (room closed, signature expired) is
final at once.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from typing import Final

from tavkit.errors import HttpError, TAvKitError

__all__ = ["REJOIN_FIRST_DELAY", "REJOIN_MAX_DELAY", "REJOIN_PATIENCE", "enter_again"]

# The kit's logger: these lines are part of the call's story.
logger = logging.getLogger("tavkit.client.kit")

REJOIN_PATIENCE: Final = 60.0
"""How long (seconds) the kit keeps trying to enter again after the server dropped it.

Memberships that the server drops again within this time share one patience: a
server that accepts every enter and then refuses the socket ends the call, not loops."""
REJOIN_FIRST_DELAY: Final = 0.5
REJOIN_MAX_DELAY: Final = 5.0
"""The pause before a rejoin, doubling with each rejoin of the same run (the first has none)."""


async def enter_again(
    enter: Callable[[], Awaitable[None]],
    report: Callable[[TAvKitError], None],
    *,
    patience: float = REJOIN_PATIENCE,
    first_delay: float = REJOIN_FIRST_DELAY,
    max_delay: float = REJOIN_MAX_DELAY,
) -> bool:
    """Call ``enter`` until it succeeds; return whether it did.

    An :class:`~tavkit.errors.HttpError` (the network) is retried after ``first_delay``
    seconds, doubling up to ``max_delay``, while the next try would start within
    ``patience`` seconds; after that it is given to ``report``. Any other
    :class:`~tavkit.errors.TAvKitError` (the server said no) is reported at once.
    """
    loop = asyncio.get_running_loop()
    deadline = loop.time() + patience
    delay = first_delay
    while True:
        try:
            await enter()
            return True
        except HttpError as exc:  # the network is still down: keep trying a while
            if loop.time() + delay > deadline:
                report(exc)
                return False
            logger.info("entering again failed (%s); retrying in %.1f s", exc, delay)
            await asyncio.sleep(delay)
            delay = min(delay * 2, max_delay)
        except TAvKitError as exc:  # the server said no (room closed, signature expired)
            report(exc)
            return False
