"""``iceTransportPolicy: relay`` per app: the server relays no address but TURN's.

Relay-only is a privacy promise (peers never learn each other's addresses), so it is
kept by the server, not left to the clients: whatever a member trickles or writes in
its SDP, only ``typ relay`` candidates reach the other member. Other apps on the same
server keep the server's policy.
"""

from __future__ import annotations

import asyncio
import json
from typing import TYPE_CHECKING

import httpx
import pytest
from conftest import APP_ID, random_key

from tavkit.server.ice import candidate_type, filter_candidate, filter_sdp
from tavkit.server.settings import AppConfig, Settings, read_apps_file

from .test_signaling import TIMEOUT, frame, member, until

if TYPE_CHECKING:
    from pathlib import Path

    from conftest import ServerFactory

HOST = "candidate:1 1 udp 2122260223 192.168.1.20 50000 typ host generation 0"
SRFLX = "candidate:2 1 udp 1686052607 198.51.100.7 41000 typ srflx raddr 0.0.0.0 rport 0"
RELAY = "candidate:3 1 udp 41885439 203.0.113.9 60000 typ relay raddr 0.0.0.0 rport 0"
OFFER = (
    "v=0\r\no=- 1 2 IN IP4 127.0.0.1\r\ns=-\r\nt=0 0\r\n"
    "m=audio 9 UDP/TLS/RTP/SAVPF 111\r\nc=IN IP4 0.0.0.0\r\na=mid:0\r\na=sendrecv\r\n"
    f"a={HOST}\r\na={SRFLX}\r\na={RELAY}\r\na=end-of-candidates\r\n"
)
OTHER_APP = 1400000002


@pytest.mark.parametrize(
    ("line", "kept"),
    [(HOST, False), (SRFLX, False), (RELAY, True), ("", True), ("candidate:garbage", False)],
)
def test_relay_only_keeps_relay_candidates_alone(line: str, kept: bool) -> None:
    """Under relay-only a host, srflx or unreadable candidate is dropped; relay and the
    end-of-candidates marker pass."""
    assert filter_candidate(line, None, relay_only=True) is kept
    assert filter_candidate(line, None)  # the policy "all" lets every line through


def test_relay_only_strips_other_candidates_from_sdp() -> None:
    """Only the relay ``a=candidate`` line stays in an SDP; every other line is kept."""
    kept = filter_sdp(OFFER, None, relay_only=True)
    assert [candidate_type(line) for line in kept.splitlines() if "candidate:" in line] == ["relay"]
    assert kept.replace(f"a={RELAY}\r\n", "") == OFFER.replace(f"a={HOST}\r\n", "").replace(
        f"a={SRFLX}\r\n", ""
    ).replace(f"a={RELAY}\r\n", "")


def test_the_apps_file_sets_an_app_s_policy(tmp_path: Path) -> None:
    """``iceTransportPolicy`` in the apps file decides for that app; others keep the
    server's; a value other than all/relay is refused naming the field."""
    path = tmp_path / "apps.json"
    key = random_key()
    path.write_text(json.dumps([{"sdkAppId": 7, "key": key, "iceTransportPolicy": "relay"}]))
    settings = Settings(apps=read_apps_file(path))
    assert settings.ice_transport_policy_of(7) == "relay"
    assert settings.ice_transport_policy_of(8) == "all"
    path.write_text(json.dumps([{"sdkAppId": 7, "key": key, "iceTransportPolicy": "none"}]))
    with pytest.raises(ValueError, match="iceTransportPolicy"):
        read_apps_file(path)


async def test_a_relay_app_never_relays_a_members_address(sqlite_server_factory: ServerFactory):
    """In a relay app, enter says ``relay``; a trickled host or srflx candidate never
    reaches the other member while a relay one does, and an offer arrives with only its
    relay candidate. An app without its own policy is told ``all``."""
    relay_app = AppConfig(APP_ID, random_key(), ice_transport_policy="relay")
    other = AppConfig(OTHER_APP, random_key())
    server = sqlite_server_factory(apps=(relay_app, other))
    async with (
        httpx.AsyncClient(base_url=server.url, timeout=30) as http,
        member(http, server, "alice", 71) as (alice, _),
        member(http, server, "bob", 71) as (bob, _),
    ):
        entered = await http.post(
            "/v1/rooms/72/enter",
            headers=server.headers("carol", sig=server.sig("carol", app=other), app_id=OTHER_APP),
        )
        assert entered.json()["iceTransportPolicy"] == "all"
        again = await http.post("/v1/rooms/73/enter", headers=server.headers("dave"))
        assert again.json()["iceTransportPolicy"] == "relay"

        for n, line in enumerate((HOST, SRFLX, RELAY)):
            data = {"candidate": {"candidate": line, "sdpMid": "0", "sdpMLineIndex": 0}}
            await bob.send(
                json.dumps({"type": "signal", "to": "alice", "data": data, "id": f"c{n}"})
            )
        offer = {"description": {"type": "offer", "sdp": OFFER}}
        await bob.send(json.dumps({"type": "signal", "to": "alice", "data": offer}))
        received = []
        async with asyncio.timeout(TIMEOUT):
            while len(received) < 2:
                got = await frame(alice)
                if got.get("type") == "signal":
                    received.append(got["data"])
        assert received[0] == {"candidate": {"candidate": RELAY, "sdpMid": "0", "sdpMLineIndex": 0}}
        sdp = received[1]["description"]["sdp"]
        assert RELAY in sdp and HOST not in sdp and SRFLX not in sdp
        # Nothing else came: a ping's pong is the next frame alice sees.
        await alice.send(json.dumps({"type": "ping", "t": 7}))
        _, between = await until(alice, "pong")
        assert [f for f in between if f.get("type") == "signal"] == []
