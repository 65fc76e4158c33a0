"""The Python call client: the seed's ``TAvKit`` component on aiortc.

:class:`TAvKit` enters a room of a tavkit server and calls every member with one
aiortc peer connection each, interoperating with the ``<tavkit-call>`` browser
component (``docs/protocol.md``). :class:`Listener` is the seed's listener with
no-op callbacks; :mod:`tavkit.client.media` has the sources (test pattern, file,
device); :mod:`tavkit.client.api` is the REST client on its own;
:class:`JoinTimeline` is where a join's time went (:attr:`TAvKit.join_timelines`). In-call messages
are :class:`ChatMessage` values.

The names are imported on first use, so ``tavkit --help`` and ``import tavkit`` do
not pay for loading aiortc and PyAV.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from tavkit.client.api import Credentials, EnterResult, RoomApi
    from tavkit.client.connections import MediaConnection
    from tavkit.client.kit import TAvKit
    from tavkit.client.listener import Listener, ListenerProtocol, UserInfo
    from tavkit.client.media import DeviceSource, FileSource, MediaSource, TestPattern
    from tavkit.client.sinks import PeerStats
    from tavkit.client.timeline import JoinTimeline
    from tavkit.protocol import ChatMessage

__all__ = [
    "ChatMessage",
    "Credentials",
    "DeviceSource",
    "EnterResult",
    "FileSource",
    "JoinTimeline",
    "Listener",
    "ListenerProtocol",
    "MediaConnection",
    "MediaSource",
    "PeerStats",
    "RoomApi",
    "TAvKit",
    "TestPattern",
    "UserInfo",
]

_HOME = {
    "ChatMessage": "_im",
    "Credentials": "api",
    "EnterResult": "api",
    "RoomApi": "api",
    "TAvKit": "kit",
    "MediaConnection": "connections",
    "Listener": "listener",
    "ListenerProtocol": "listener",
    "UserInfo": "listener",
    "DeviceSource": "media",
    "FileSource": "media",
    "MediaSource": "media",
    "TestPattern": "media",
    "PeerStats": "sinks",
    "JoinTimeline": "timeline",
}


def __getattr__(name: str) -> Any:
    module = _HOME.get(name)
    if module is None:
        raise AttributeError(f"module 'tavkit.client' has no attribute {name!r}")
    return getattr(importlib.import_module(f"tavkit.client.{module}"), name)


def __dir__() -> list[str]:
    return sorted(__all__)
