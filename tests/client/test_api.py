"""The REST client against a real server: answers, the server's errors, and the public API."""

from __future__ import annotations

from typing import Any
from urllib.parse import urlsplit

import pytest

import tavkit.client
from tavkit.auth import Privilege
from tavkit.client import Credentials, RoomApi
from tavkit.errors import ServerError
from tavkit.testing.relay import TcpRelay


async def test_enter_lists_the_others_and_the_socket(sqlite_server_factory: Any) -> None:
    """enter() parses the contract's response: session, other members, timers, socket."""
    server = sqlite_server_factory()
    ann = RoomApi(server.url, Credentials(server.app_id, "ann", server.sig("ann")))
    bob = RoomApi(server.url, Credentials(server.app_id, "bob", server.sig("bob")))
    try:
        first = await ann.enter(601)
        second = await bob.enter(601)
        assert second.room_uuid == first.room_uuid
        assert [m.user_id for m in second.members] == ["ann"]
        assert second.socket_url.startswith("ws://127.0.0.1:") and second.socket_token
        assert second.heartbeat_timeout > second.heartbeat_interval > 0
        assert second.ice_servers == () and second.privileges == Privilege.ALL
        assert sorted(m.user_id for m in await ann.users(601)) == ["ann", "bob"]
        record = await ann.session(first.room_uuid)
        assert record["roomUuid"] == first.room_uuid
        await bob.exit(601)
        assert [m.user_id for m in await ann.users(601)] == ["ann"]
    finally:
        await ann.aclose()
        await bob.aclose()


async def test_server_errors_are_raised_at_once_without_retrying(
    sqlite_server_factory: Any,
) -> None:
    """A seed error answer (here: heartbeat outside any room) is raised after one request."""
    server = sqlite_server_factory()
    url = urlsplit(server.url)
    assert url.hostname is not None and url.port is not None
    async with TcpRelay(url.hostname, url.port) as relay:
        api = RoomApi(relay.url, Credentials(server.app_id, "ann", server.sig("ann")), retries=3)
        try:
            with pytest.raises(ServerError) as caught:
                await api.heartbeat(602)
            assert caught.value.error_code in (14002, 14004)
            assert relay.accepted == 1
        finally:
            await api.aclose()


def test_credentials_do_not_show_the_signature() -> None:
    """repr(Credentials) names the user but never prints the userSig."""
    credentials = Credentials(1400000001, "ann", "secret-signature", "secret-key")
    assert "secret" not in repr(credentials)
    assert credentials.headers()["X-TAvKit-PrivateMapKey"] == "secret-key"


def test_client_all_is_the_public_api() -> None:
    """``tavkit.client.__all__`` lists exactly what the package exports, and each resolves."""
    assert sorted(tavkit.client.__all__) == [
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
    for name in tavkit.client.__all__:
        assert getattr(tavkit.client, name).__name__ == name
    with pytest.raises(AttributeError):
        _ = tavkit.client.NotAThing  # type: ignore[attr-defined]
