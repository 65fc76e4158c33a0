"""ICE policy: the servers handed to clients, TURN REST credentials, candidate filtering."""

from __future__ import annotations

import ipaddress

import pytest

from tavkit.protocol import (
    CandidateData,
    DescriptionData,
    IceCandidate,
    SessionDescription,
)
from tavkit.server.ice import (
    both_transports,
    candidate_address,
    filter_candidate,
    filter_sdp,
    filter_signal,
    ice_servers_for,
    turn_credentials,
)
from tavkit.server.settings import Settings, parse_networks

LOOPBACK = parse_networks("127.0.0.0/8")


def cand(address: str, kind: str = "host") -> str:
    """A candidate line with ``address``, as a browser trickles it."""
    return f"candidate:842163049 1 udp 1677729535 {address} 50000 typ {kind} generation 0"


# --- ICE servers and TURN credentials ----------------------------------------------------


def test_turn_credentials_match_an_independent_hmac() -> None:
    """Username is "expiry:userId", credential base64(HMAC-SHA1), as openssl computes it."""
    # printf '%s' "1700086400:alice" | openssl dgst -sha1 -hmac north-wind -binary | base64
    assert turn_credentials("north-wind", "alice", 1700086400) == (
        "1700086400:alice",
        "2cdv8ItP/4kX53j3SEoTDhjFpeM=",
    )


def test_turn_entries_get_minted_credentials_valid_for_the_ttl() -> None:
    """turn: and turns: entries get credentials expiring now + turn_ttl; STUN gets none."""
    settings = Settings(
        ice_servers=("stun:127.0.0.1:3478", {"urls": ["turn:127.0.0.1:3478", "turns:t.test"]}),
        turn_secret="s3cr3t",
        turn_ttl=60,
    )
    servers = ice_servers_for(settings, "bob@example.com", now=1700000000.75)
    # printf '%s' "1700000060:bob@example.com" | openssl dgst -sha1 -hmac s3cr3t -binary | base64
    assert servers == [
        {"urls": ["stun:127.0.0.1:3478"]},
        {
            "urls": [
                "turn:127.0.0.1:3478?transport=udp",
                "turn:127.0.0.1:3478?transport=tcp",
                "turns:t.test",
            ],
            "username": "1700000060:bob@example.com",
            "credential": "qej/a383F2nnnbfbmTLwS1yCqMI=",
        },
    ]


@pytest.mark.parametrize(
    ("given", "offered"),
    [
        ("turn:t.test", ["turn:t.test?transport=udp", "turn:t.test?transport=tcp"]),
        ("turn:t.test:3478?foo=1", ["turn:t.test:3478?foo=1&transport=udp",
                                    "turn:t.test:3478?foo=1&transport=tcp"]),
        ("turn:t.test?transport=tcp", ["turn:t.test?transport=tcp"]),
        ("turns:t.test:5349", ["turns:t.test:5349"]),
        ("stun:t.test", ["stun:t.test"]),
    ],
)  # fmt: skip
def test_turn_is_offered_over_udp_and_tcp(given: str, offered: list[str]) -> None:
    """A ``turn:`` URL naming no transport is offered over UDP and TCP (a network that
    blocks UDP still reaches coturn); ``turns:`` and explicit transports stay as given."""
    assert both_transports([given]) == offered
    settings = Settings(ice_servers=(given,), turn_secret="k")
    assert ice_servers_for(settings, "alice")[0]["urls"] == offered


def test_default_ttl_is_a_day() -> None:
    """Without a TTL setting the credentials expire 24 hours from now."""
    settings = Settings(ice_servers=("turn:127.0.0.1:3478",), turn_secret="k")
    [server] = ice_servers_for(settings, "alice", now=1000.0)
    assert server["username"] == f"{1000 + 86400}:alice"


def test_static_credentials_are_kept() -> None:
    """A TURN entry that brings its own credentials keeps them, even with a secret set."""
    entry = {"urls": "turn:127.0.0.1:3478", "username": "u", "credential": "p"}
    settings = Settings(ice_servers=(entry,), turn_secret="k")
    [server] = ice_servers_for(settings, "alice")
    assert (server["username"], server["credential"]) == ("u", "p")


def test_turn_without_credentials_or_secret_is_left_out() -> None:
    """A credential-less TURN entry would make browsers refuse the whole list, so it is dropped."""
    settings = Settings(ice_servers=("stun:127.0.0.1:3478", "turn:127.0.0.1:3478"))
    assert ice_servers_for(settings, "alice") == [{"urls": ["stun:127.0.0.1:3478"]}]


def test_no_servers_by_default() -> None:
    """Default settings hand out no ICE servers at all (no public STUN)."""
    assert ice_servers_for(Settings(), "alice") == []


def test_returned_entries_are_fresh_dicts() -> None:
    """Callers may change the returned list without touching the settings."""
    settings = Settings(ice_servers=({"urls": ["stun:127.0.0.1:3478"]},))
    ice_servers_for(settings, "alice")[0]["urls"].append("stun:evil.test")
    assert ice_servers_for(settings, "alice") == [{"urls": ["stun:127.0.0.1:3478"]}]


# --- candidates ----------------------------------------------------------------------------


def test_candidate_address_reads_both_forms() -> None:
    """The address is found in trickled and SDP candidate lines; junk gives None."""
    assert candidate_address(cand("127.0.0.1")) == "127.0.0.1"
    assert candidate_address("a=" + cand("::1") + "\r\n") == "::1"
    assert candidate_address("candidate:1 1 udp 1 127.0.0.1") is None
    assert candidate_address("hello") is None


@pytest.mark.parametrize(
    ("line", "kept"),
    [
        (cand("127.0.0.1"), True),
        (cand("127.200.3.4", "srflx"), True),
        ("a=" + cand("127.0.0.1"), True),
        ("", True),
        (cand("192.168.1.20"), False),
        (cand("10.0.0.1", "relay"), False),
        (cand("::1"), False),
        (cand("2001:db8::1"), False),
        (cand("fe80::1%eth0"), False),
        (cand("::ffff:127.0.0.1"), True),
        (cand("2f7b1f32-5b44-4b13-9d1c-3cf5d7b0c3aa.local"), False),
        (cand("turn.example.com"), False),
        ("candidate:garbage", False),
    ],
)
def test_filter_candidate_on_loopback(line: str, kept: bool) -> None:
    """With 127.0.0.0/8 only loopback IPv4 passes: other IPv4, IPv6, mDNS and junk are dropped."""
    assert filter_candidate(line, LOOPBACK) is kept


def test_no_networks_means_no_filter() -> None:
    """Empty allowed networks let every candidate through, mDNS included."""
    for line in (cand("192.168.1.20"), cand("abc.local"), cand("2001:db8::1")):
        assert filter_candidate(line, ())
        assert filter_candidate(line, None)


def test_ipv6_networks_filter_ipv6() -> None:
    """An IPv6 network admits its own addresses and not IPv4 ones."""
    networks = (ipaddress.ip_network("2001:db8::/32"),)
    assert filter_candidate(cand("2001:db8::7"), networks)
    assert not filter_candidate(cand("2001:db9::7"), networks)
    assert not filter_candidate(cand("127.0.0.1"), networks)


SDP = (
    "v=0\r\n"
    "o=- 1 2 IN IP4 127.0.0.1\r\n"
    "m=audio 9 UDP/TLS/RTP/SAVPF 111\r\n"
    "c=IN IP4 0.0.0.0\r\n"
    f"a={cand('127.0.0.1')}\r\n"
    f"a={cand('192.168.1.20')}\r\n"
    f"a={cand('2001:db8::1')}\r\n"
    f"a={cand('5f1e2a3b-1111-2222-3333-444455556666.local')}\r\n"
    "a=end-of-candidates\r\n"
    "a=mid:0\r\n"
)


def test_filter_sdp_keeps_loopback_and_end_of_candidates() -> None:
    """SDP keeps loopback candidates and every non-candidate line, CRLFs intact."""
    filtered = filter_sdp(SDP, LOOPBACK)
    assert filtered == (
        "v=0\r\n"
        "o=- 1 2 IN IP4 127.0.0.1\r\n"
        "m=audio 9 UDP/TLS/RTP/SAVPF 111\r\n"
        "c=IN IP4 0.0.0.0\r\n"
        f"a={cand('127.0.0.1')}\r\n"
        "a=end-of-candidates\r\n"
        "a=mid:0\r\n"
    )
    assert filter_sdp(SDP, ()) == SDP


def test_filter_signal() -> None:
    """Signal data: refused candidates become None, descriptions are filtered, the end passes."""
    good = CandidateData(IceCandidate(cand("127.0.0.1"), "0", 0))
    bad = CandidateData(IceCandidate(cand("192.168.1.20"), "0", 0))
    end = CandidateData(None)
    assert filter_signal(good, LOOPBACK) == good
    assert filter_signal(bad, LOOPBACK) is None
    assert filter_signal(bad, ()) == bad
    assert filter_signal(end, LOOPBACK) == end
    offer = filter_signal(DescriptionData(SessionDescription("offer", SDP)), LOOPBACK)
    assert isinstance(offer, DescriptionData)
    assert "192.168.1.20" not in offer.description.sdp
    assert "127.0.0.1 50000" in offer.description.sdp
