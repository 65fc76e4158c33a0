"""Entering the room again after a long outage: retry the network, accept the server's no."""

from __future__ import annotations

import pytest

from tavkit.client._rejoin import enter_again
from tavkit.errors import HttpCode, HttpError, ServerCode, ServerError, TAvKitError


class Attempts:
    """An ``enter`` that fails with the given errors in turn, then succeeds."""

    def __init__(self, *failures: TAvKitError) -> None:
        self.failures = list(failures)
        self.calls = 0

    async def __call__(self) -> None:
        self.calls += 1
        if self.failures:
            raise self.failures.pop(0)


async def test_network_errors_are_retried_until_entering_works() -> None:
    """Network failures are retried with backoff; success reports nothing."""
    enter = Attempts(HttpError(HttpCode.NETWORK), HttpError(HttpCode.NETWORK))
    reported: list[TAvKitError] = []
    assert await enter_again(enter, reported.append, first_delay=0.01) is True
    assert enter.calls == 3 and reported == []


async def test_a_refusal_by_the_server_is_reported_at_once() -> None:
    """A server error (room closed) ends the attempts on the spot and is reported."""
    closed = ServerError(ServerCode.ROOM_CLOSED)
    enter = Attempts(closed, HttpError(HttpCode.NETWORK))
    reported: list[TAvKitError] = []
    assert await enter_again(enter, reported.append, first_delay=0.01) is False
    assert enter.calls == 1 and reported == [closed]


@pytest.mark.parametrize("patience", [0.0, 0.05])
async def test_the_network_error_is_reported_when_patience_runs_out(patience: float) -> None:
    """When the next try would start past ``patience``, the last network error is reported."""
    down = HttpError(HttpCode.NETWORK, "still down")
    enter = Attempts(*[down] * 100)
    reported: list[TAvKitError] = []
    ok = await enter_again(enter, reported.append, patience=patience, first_delay=0.02)
    assert ok is False and reported == [down]
    assert 1 <= enter.calls < 10
