"""tavkit.testing: test your own call flows with real calls, no browser farm, no mocks.

``pip install tavkit[testing]`` and pytest loads the plugin (:mod:`tavkit.testing.plugin`):
the ``tavkit_server`` and ``participant`` fixtures. A whole test::

    from tavkit.testing import assert_call_connected

    async def test_alice_and_bob_see_each_other(participant):
        alice = await participant("alice")
        bob = await participant("bob")
        await alice.wait_for_video_from("bob")
        await bob.wait_for_video_from("alice")
        assert_call_connected(alice, bob)

The names below are imported on first use, so loading the plugin costs nothing until
a fixture is used. See ``docs/testing.md``.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from tavkit.testing.assertions import assert_call_connected, assert_no_errors
    from tavkit.testing.media import ColourSource
    from tavkit.testing.network import Conditions, Network
    from tavkit.testing.participant import Participant
    from tavkit.testing.relay import TcpRelay
    from tavkit.testing.server import RunningServer, TavkitServer
    from tavkit.testing.webhooks import WebhookReceiver

__all__ = [
    "ColourSource",
    "Conditions",
    "Network",
    "Participant",
    "RunningServer",
    "TavkitServer",
    "TcpRelay",
    "WebhookReceiver",
    "assert_call_connected",
    "assert_no_errors",
]

_HOME = {
    "assert_call_connected": "assertions",
    "assert_no_errors": "assertions",
    "ColourSource": "media",
    "Conditions": "network",
    "Network": "network",
    "Participant": "participant",
    "TcpRelay": "relay",
    "RunningServer": "server",
    "TavkitServer": "server",
    "WebhookReceiver": "webhooks",
}


def __getattr__(name: str) -> Any:
    module = _HOME.get(name)
    if module is None:
        raise AttributeError(f"module 'tavkit.testing' has no attribute {name!r}")
    return getattr(importlib.import_module(f"tavkit.testing.{module}"), name)


def __dir__() -> list[str]:
    return sorted(__all__)
