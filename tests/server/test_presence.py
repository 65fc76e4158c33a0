"""Who the others see as reconnecting, when a member's sockets overlap.

A member's new socket (a resume, possibly on another replica) announces itself on the
session's channel; from then on only that socket speaks for the member's link. An older
socket that reports its own end afterwards (its replica noticed the drop late) must not
show a member who is back as reconnecting. The late report is published here on the
server's own bus, as another replica would publish it.
"""

from __future__ import annotations

import asyncio
import json
from typing import TYPE_CHECKING

import httpx

from tavkit.server.bus import session_channel
from tavkit.server.events import Event, MemberLinkEvent
from tavkit.server.signaling.tokens import load_or_create_secret, verify

from ._util import eventually
from .test_shedding import CapturedApp
from .test_signaling import LOOPBACK, closed, enter, frame, member, socket, until

if TYPE_CHECKING:
    from conftest import ServerFactory


async def test_a_superseded_socket_s_late_link_report_is_ignored(
    sqlite_server_factory: ServerFactory,
) -> None:
    """After alice resumes on a new socket, a 'link down' from her old socket changes
    nothing for bob; her current socket's own down and up still reach him."""
    captured = CapturedApp()
    server = sqlite_server_factory(ice_allowed_networks=LOOPBACK, app_factory=captured.build)
    async with (
        httpx.AsyncClient(base_url=server.url, timeout=30) as http,
        member(http, server, "bob", 7110) as (bob, _),
    ):
        entered = await enter(http, server, "alice", 7110)
        token = entered["socketToken"]
        claims = verify(load_or_create_secret(server.settings.data_dir), token)
        registry = captured.ctx.sockets

        async def listening() -> str | None:
            return registry.listening(claims.connection_id)

        async with socket(server, token) as first:
            welcome = await frame(first)
            old = await eventually(listening)
            async with socket(server, token) as second:
                assert (await frame(second))["resumed"] is True
                assert (await closed(first))[0] == 4001  # superseded by the new socket

                async def newer() -> str | None:
                    now = await listening()
                    return now if now != old else None

                new = await eventually(newer)
                channel = session_channel(welcome["roomUuid"])

                async def publish(event: Event) -> None:
                    assert captured.loop is not None
                    bus = captured.ctx.bus
                    done = asyncio.run_coroutine_threadsafe(
                        bus.publish(channel, event), captured.loop
                    )
                    await asyncio.wrap_future(done)

                link = ("alice", claims.connection_id)
                await publish(MemberLinkEvent(*link, up=False, socket_id=old))  # late: ignored
                await publish(MemberLinkEvent(*link, up=True, socket_id=new))  # no news
                await publish(MemberLinkEvent(*link, up=False, socket_id=new))
                await publish(MemberLinkEvent(*link, up=True, socket_id=new))
                # A frame of alice's after all of them: bob hears it after their effects.
                await second.send(json.dumps({"type": "state", "muted": True, "camera": True}))
                _, before = await until(bob, "member-state")
    seen = [f["status"] for f in before if f["type"] == "member-connection"]
    assert seen == ["reconnecting", "connected"]
