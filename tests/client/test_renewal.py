"""Credentials that end mid-call, for the Python client against a real server.

Signatures live a few seconds (``TLS.expire`` is whole seconds) and the server's
renewal grace is one second, so they end during the call. No test asserts a duration:
members are ordered by when their signatures end, and each test waits for what a user
would see (a member leaving, a message arriving, frames flowing).
"""

from __future__ import annotations

from typing import Any

import pytest

from tavkit.auth import decode_sig
from tavkit.client import Listener, MediaSource, TAvKit
from tavkit.errors import AvkitCode, AvkitError

from ._util import LOOPBACK, RecordingListener, frames_from, make_kit, receiving, until

ROOM = 5151
GRACE = 1.0


class NoMedia(MediaSource):
    """A source with no tracks: the member only receives."""

    async def open(self) -> None:
        """Nothing to open."""


class Renewing(RecordingListener):
    """Answers ``on_user_sig_expired`` (as a coroutine) with a fresh, long userSig."""

    def __init__(self, server: Any, user_id: str) -> None:
        super().__init__()
        self.server = server
        self.user_id = user_id
        self.given: list[str] = []

    async def on_user_sig_expired(self) -> str:
        self.events.append(("on_user_sig_expired",))
        sig: str = self.server.sig(self.user_id, expire=3600)
        self.given.append(sig)
        return sig


class Silent(RecordingListener):
    """Does not renew: the default ``on_user_sig_expired`` returns None."""


async def start(kit: TAvKit, server: Any, user_id: str, sig: str, listener: Listener) -> None:
    """Start ``kit`` in :data:`ROOM` with ``sig``."""
    await kit.start(
        sdk_app_id=server.app_id, user_id=user_id, user_sig=sig, room_id=ROOM, listener=listener
    )


async def test_expiring_member_that_renews_stays_and_one_that_does_not_is_removed(
    sqlite_server_factory: Any,
) -> None:
    """alice renews through on_user_sig_expired and stays, her media still flowing; bob,
    whose userSig ends after hers, does not renew and is removed with "expired"."""
    server = sqlite_server_factory(renew_grace=GRACE)
    carol_events = RecordingListener()
    alice_events = Renewing(server, "alice")
    bob_events = Silent()
    carol = make_kit(server.url, reporting=False)
    alice = make_kit(server.url, reporting=False)
    bob = TAvKit(server.url, source=NoMedia(), host_addresses=LOOPBACK, reporting=False)
    async with carol, alice, bob:
        await start(carol, server, "carol", server.sig("carol"), carol_events)
        alice_sig = server.sig("alice", expire=4)
        await start(alice, server, "alice", alice_sig, alice_events)
        bob_sig = server.sig("bob", expire=5)
        assert decode_sig(bob_sig).expires_at > decode_sig(alice_sig).expires_at
        await start(bob, server, "bob", bob_sig, bob_events)

        await until(receiving(carol, "alice"), "carol receives alice before the renewal")
        await until(lambda: bob.closed, "bob, who did not renew, is removed")
        assert ("on_user_leave", "bob", "expired") in carol_events.events
        assert any("expired" in error["errorMsg"] for error in bob_events.errors())

        # bob's end came after alice's old one: her old deadline has passed too.
        assert alice_events.names().count("on_user_sig_expired") == 1
        assert not alice.closed and carol.members == ["alice"]
        assert ("on_user_leave", "alice", "expired") not in carol_events.events
        assert alice_events.errors() == []
        video, audio = frames_from(carol, "alice")
        await until(receiving(carol, "alice", video + 10, audio + 10), "alice's media flows on")
        sent = await alice.send_message("still here")
        assert sent.sender == "alice"


async def test_renew_by_hand_and_a_refused_renewal(sqlite_server_factory: Any) -> None:
    """kit.renew() with a good userSig is accepted; with another user's it raises avkit 70346
    and the old credentials stay in force."""
    server = sqlite_server_factory(renew_grace=GRACE)
    events = RecordingListener()
    async with TAvKit(server.url, source=NoMedia(), host_addresses=LOOPBACK) as kit:
        await start(kit, server, "alice", server.sig("alice"), events)
        await kit.renew(server.sig("alice", expire=7200))
        with pytest.raises(AvkitError) as refused:
            await kit.renew(server.sig("mallory"))
        assert refused.value.code is AvkitCode.USER_SIG_INVALID
        assert not kit.closed
        sent = await kit.send_message("renewed")
        assert sent.text == "renewed"


async def test_two_sockets_warned_together_ask_the_listener_once() -> None:
    """A user's room socket and user socket (one userSig) are warned together: the
    listener is asked once and each socket sends the answer, with its own key."""
    import asyncio
    import time

    from tavkit.client._renewal import Renewal
    from tavkit.protocol import ClientMessage, Expiring, Renew

    class Sent:
        """A socket that keeps what is sent on it (no server answers: only the ask is
        under test here, the renewal round trip is above)."""

        def __init__(self) -> None:
            self.frames: list[ClientMessage] = []

        async def send(self, message: ClientMessage, /) -> None:
            self.frames.append(message)

    class Asked:
        def __init__(self) -> None:
            self.times = 0

        async def on_user_sig_expired(self) -> str:
            self.times += 1
            await asyncio.sleep(0.05)  # the app mints a signature
            return "sig-new"

    listener = Asked()
    tasks: set[asyncio.Task[Any]] = set()
    sockets = {"room": (Sent(), "pmk-room"), "user": (Sent(), None)}
    renewals = [
        Renewal(
            socket=lambda sent=sent: sent,  # type: ignore[misc]
            listener=lambda: listener,
            current_key=lambda key=key: key,  # type: ignore[misc]
            on_renewed=lambda *_: None,
            report=lambda _: None,
            spawn=lambda coro: tasks.add(asyncio.ensure_future(coro)),
            timeout=0.2,
        )
        for sent, key in sockets.values()
    ]
    warning = Expiring(expires_at=time.time() + 30, deadline=time.time() + 40)
    for renewal in renewals:
        assert renewal.receive(warning)
    await asyncio.gather(*tasks)
    assert listener.times == 1
    room, user = (sent.frames for sent, _ in sockets.values())
    assert [(f.user_sig, f.private_map_key) for f in room if isinstance(f, Renew)] == [
        ("sig-new", "pmk-room")
    ]
    assert [(f.user_sig, f.private_map_key) for f in user if isinstance(f, Renew)] == [
        ("sig-new", None)
    ]
