"""Negotiation between two peer links wired back to back: glare and rebuilding a failed pc.

The links are the real thing (aiortc peer connections over loopback); only the
signaling channel is an in-memory wire, so a test can make both sides offer at the
same moment or spoil one answer on its way.
"""

from __future__ import annotations

import re
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from typing import Any

from tavkit.client._publish import Publisher
from tavkit.client.peer import CONNECT_WITHIN, PeerLink
from tavkit.ice import configuration
from tavkit.protocol import DescriptionData, SessionDescription, SignalData

from ._util import LOOPBACK, small_pattern, until

Mangle = Callable[[str, SignalData], SignalData]


@asynccontextmanager
async def wired_pair(
    *, bob_offers: bool, mangle: Mangle | None = None, connect_within: float = CONNECT_WITHIN
) -> AsyncIterator[dict[str, PeerLink]]:
    """Links ``ann`` (polite: sorts lower) and ``bob`` sending their signals to each other.

    Ann is always a newcomer (she offers); Bob is one too when ``bob_offers``.
    """
    links: dict[str, PeerLink] = {}
    publishers: list[Publisher] = []
    sources = []
    for name, initiator in (("ann", True), ("bob", bob_offers)):
        source = small_pattern()
        await source.open()
        assert source.audio is not None and source.video is not None
        pubs = [
            Publisher("audio", source.audio),
            Publisher("video", source.video, video_bitrate=300_000),
        ]
        for pub in pubs:
            pub.start()
        sources.append(source)
        publishers += pubs
        other = "bob" if name == "ann" else "ann"

        def sender(me: str = name, to: str = other) -> Callable[[SignalData], Any]:
            async def send(data: SignalData) -> None:
                links[to].handle(mangle(me, data) if mangle else data)

            return send

        links[name] = PeerLink(
            local_id=name,
            remote_id=other,
            initiator=initiator,
            configuration=configuration,
            host_addresses=LOOPBACK,
            publishers=pubs,
            send=sender(),
            on_frame=lambda user_id, frame: None,
            on_track=lambda user_id, track: None,
            on_give_up=lambda link: None,
            connect_within=connect_within,
        )
    try:
        yield links
    finally:
        for link in links.values():
            await link.aclose()
        for pub in publishers:
            await pub.aclose()
        for source in sources:
            await source.close()


def flowing(link: PeerLink, frames: int = 10) -> Callable[[], bool]:
    """A condition: ``link`` decoded this many video and audio frames."""
    return lambda: link.stats.video_frames >= frames and link.stats.audio_frames >= frames


async def test_offers_crossing_on_the_wire_still_connect() -> None:
    """Both sides offer at once: the impolite ignores, the polite answers on a fresh pc."""
    async with wired_pair(bob_offers=True) as links:
        links["ann"].offer()
        links["bob"].offer()
        await until(flowing(links["ann"]), "ann decodes bob")
        await until(flowing(links["bob"]), "bob decodes ann")
        ann_pc, bob_pc = links["ann"].pc, links["bob"].pc
        assert ann_pc is not None and bob_pc is not None
        # Bob (impolite) kept the connection he offered on; Ann answered it.
        assert bob_pc.localDescription.type == "offer"
        assert ann_pc.localDescription.type == "answer"


async def test_a_failed_connection_is_rebuilt_by_the_offerer() -> None:
    """When the first connection fails (a spoilt DTLS fingerprint), the offerer rebuilds it."""
    spoilt: list[str] = []

    def spoil_first_answer(sender: str, data: SignalData) -> SignalData:
        if isinstance(data, DescriptionData) and data.description.type == "answer" and not spoilt:
            spoilt.append(sender)
            sdp = re.sub(
                r"(a=fingerprint:sha-256 )([0-9A-F:]+)",
                lambda m: m.group(1) + "00" + m.group(2)[2:],
                data.description.sdp,
            )
            return DescriptionData(SessionDescription("answer", sdp))
        return data

    async with wired_pair(bob_offers=False, mangle=spoil_first_answer) as links:
        links["ann"].offer()  # ann is the newcomer here; bob only answers
        await until(flowing(links["ann"]), "ann decodes bob after the rebuild", 40)
        await until(flowing(links["bob"]), "bob decodes ann after the rebuild", 40)
        assert spoilt == ["bob"]
        assert links["ann"].stats.rebuilds >= 1


async def test_an_answer_to_an_earlier_offer_does_not_leave_the_link_stuck() -> None:
    """Two offers cross a slow path and the answer to the first lands on the second's
    connection (its ICE credentials match nothing there): the offerer sees the answered
    connection never come up and offers anew (after 3 s here, 15 s by default), so
    media flows without waiting for aiortc's ~30 s ICE failure."""
    async with wired_pair(bob_offers=False, connect_within=3.0) as links:
        ann = links["ann"]
        ann.offer()
        ann.offer()  # queued behind the first: bob answers both, the first answer wins
        await until(flowing(ann), "ann decodes bob after offering anew", 15)
        await until(flowing(links["bob"]), "bob decodes ann after offering anew", 15)
        assert ann.stats.rebuilds >= 1
