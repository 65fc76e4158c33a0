"""``tavkit turn config``: a coturn configuration matching the server's settings.

The NAT lab (``tests/netlab``) runs coturn from this output and calls through it;
these tests pin the text itself.
"""

from __future__ import annotations

import ipaddress
from pathlib import Path

import pytest
from typer.testing import CliRunner

from tavkit.cli import app
from tavkit.server.settings import Settings, parse_ice_servers, parse_networks
from tavkit.server.turn import TurnOptions, coturn_config

SECRET = "0123456789abcdefTURN"
URLS = "stun:turn.example.com,turn:turn.example.com:3478?transport=udp"


def settings(**overrides: object) -> Settings:
    """Settings with a TURN secret and a turn: URL, as a TURN deployment has them."""
    values: dict[str, object] = {
        "turn_secret": SECRET,
        "ice_servers": parse_ice_servers(URLS),
    }
    values.update(overrides)
    return Settings(**values)  # type: ignore[arg-type]


def lines(text: str) -> list[str]:
    """The setting lines of a config: no comments, no blank lines."""
    return [line for line in text.splitlines() if line and not line.startswith("#")]


def values(text: str, key: str) -> list[str]:
    """Every value given to ``key`` in a config, in order."""
    return [line.split("=", 1)[1] for line in lines(text) if line.startswith(f"{key}=")]


Address = ipaddress.IPv4Address | ipaddress.IPv6Address


def _ranges(text: str, key: str) -> list[tuple[Address, Address]]:
    found = []
    for value in values(text, key):
        first, _, last = value.partition("-")
        found.append((ipaddress.ip_address(first), ipaddress.ip_address(last or first)))
    return found


def relays_to(text: str, address: str) -> bool:
    """Whether coturn, given ``text``, would relay to ``address``: allowed wins over denied."""
    ip = ipaddress.ip_address(address)

    def inside(key: str) -> bool:
        return any(
            first.version == ip.version and first <= ip <= last  # type: ignore[operator]
            for first, last in _ranges(text, key)
        )

    return inside("allowed-peer-ip") or not inside("denied-peer-ip")


def test_credentials_use_tavkits_secret_and_the_turn_urls_host_as_realm() -> None:
    """The secret is static-auth-secret with use-auth-secret; the realm is the TURN host."""
    text = coturn_config(settings())
    assert "use-auth-secret" in lines(text)
    assert values(text, "static-auth-secret") == [SECRET]
    assert values(text, "realm") == ["turn.example.com"]
    assert "lt-cred-mech" not in text  # the REST scheme, not static users
    assert "fingerprint" in lines(text)


def test_defaults_listen_on_3478_without_tls_and_relay_on_coturns_range() -> None:
    """A turn: URL without a port, no certificates: port 3478, no TLS/DTLS, 49152-65535."""
    text = coturn_config(settings(ice_servers=("turn:relay.example.org",)))
    assert values(text, "listening-port") == ["3478"]
    assert {"no-tls", "no-dtls"} <= set(lines(text))
    assert values(text, "tls-listening-port") == []
    assert values(text, "min-port") == ["49152"] and values(text, "max-port") == ["65535"]
    assert "allow-loopback-peers" not in text


def test_ports_follow_the_urls_and_certificates_add_a_tls_listener() -> None:
    """turn:/turns: ports become the listeners; --cert/--pkey turn TLS on."""
    ice = parse_ice_servers('[{"urls": ["turn:t.example.net:3479", "turns:t.example.net:5350"]}]')
    options = TurnOptions(
        realm="example.net",
        min_port=50000,
        max_port=50999,
        cert=Path("/etc/ssl/turn.pem"),
        pkey=Path("/etc/ssl/turn.key"),
    )
    text = coturn_config(settings(ice_servers=ice), options)
    assert values(text, "realm") == ["example.net"]
    assert values(text, "listening-port") == ["3479"]
    assert values(text, "tls-listening-port") == ["5350"]
    assert values(text, "cert") == ["/etc/ssl/turn.pem"]
    assert values(text, "pkey") == ["/etc/ssl/turn.key"]
    assert "no-tls" not in lines(text) and "no-dtls" not in lines(text)
    assert values(text, "min-port") == ["50000"] and values(text, "max-port") == ["50999"]


@pytest.mark.parametrize(
    "address",
    [
        "10.1.2.3",
        "172.16.0.1",
        "192.168.1.1",
        "100.64.0.1",
        "127.0.0.1",
        "169.254.169.254",
        "0.0.0.0",
        "224.0.0.1",
        "::1",
        "fd00::1",
        "fe80::1",
        "::ffff:10.0.0.1",
        "64:ff9b::a00:1",
    ],
)
def test_private_loopback_and_reserved_peers_are_denied(address: str) -> None:
    """The relay cannot reach private, loopback, link-local or mapped addresses."""
    assert not relays_to(coturn_config(settings()), address)


@pytest.mark.parametrize("address", ["8.8.8.8", "1.1.1.1", "2001:4860:4860::8888"])
def test_public_peers_are_relayed(address: str) -> None:
    """Public addresses are not in any denied range."""
    assert relays_to(coturn_config(settings()), address)


def test_allowed_candidate_networks_inside_private_ranges_become_exceptions() -> None:
    """A private network tavkit allows candidates from is allowed; the rest stays denied."""
    allowed = parse_networks("10.200.0.0/16,fd12:3456::/48,8.8.8.0/24")
    text = coturn_config(settings(ice_allowed_networks=allowed))
    assert values(text, "allowed-peer-ip") == [
        "10.200.0.0-10.200.255.255",
        "fd12:3456::-fd12:3456:0:ffff:ffff:ffff:ffff:ffff",
    ]
    assert relays_to(text, "10.200.7.9") and relays_to(text, "fd12:3456::1")
    assert not relays_to(text, "10.201.0.1") and not relays_to(text, "192.168.0.1")


@pytest.mark.parametrize("networks", ["0.0.0.0/0", "127.0.0.0/8", "169.254.0.0/16", "::/0"])
def test_wide_loopback_and_link_local_networks_open_nothing(networks: str) -> None:
    """ "Anywhere", loopback and link-local in the allowed networks add no exception."""
    text = coturn_config(settings(ice_allowed_networks=parse_networks(networks)))
    assert values(text, "allowed-peer-ip") == []
    assert not relays_to(text, "127.0.0.1") and not relays_to(text, "169.254.169.254")


def test_a_private_relay_address_is_an_exception_so_relays_reach_each_other() -> None:
    """A private relay-ip is allowed (TURN to TURN on one server); a public one needs none."""
    private = coturn_config(settings(), TurnOptions(relay_ips=("10.0.0.5",)))
    assert values(private, "relay-ip") == ["10.0.0.5"]
    assert values(private, "allowed-peer-ip") == ["10.0.0.5"]
    assert not relays_to(private, "10.0.0.6")

    behind_nat = coturn_config(settings(), TurnOptions(external_ip="1.2.3.4/10.0.0.5"))
    assert values(behind_nat, "external-ip") == ["1.2.3.4/10.0.0.5"]
    assert values(behind_nat, "allowed-peer-ip") == []  # peers send to 1.2.3.4

    carrier_nat = coturn_config(settings(), TurnOptions(external_ip="100.64.9.9"))
    assert values(carrier_nat, "allowed-peer-ip") == ["100.64.9.9"]


def test_an_exception_inside_another_is_not_repeated() -> None:
    """The relay address inside an allowed network adds no second line."""
    text = coturn_config(
        settings(ice_allowed_networks=parse_networks("10.200.0.0/16")),
        TurnOptions(relay_ips=("10.200.0.1",)),
    )
    assert values(text, "allowed-peer-ip") == ["10.200.0.0-10.200.255.255"]


@pytest.mark.parametrize(
    ("overrides", "options", "message"),
    [
        ({"turn_secret": None}, TurnOptions(), "no TURN secret"),
        ({"ice_servers": ("stun:s.example.com",)}, TurnOptions(), "no realm"),
        ({"ice_servers": ("turns:t.example.com",)}, TurnOptions(), "needs a TLS listener"),
        (
            {"ice_servers": ("turn:t.example.com:3478", "turn:t.example.com:3479")},
            TurnOptions(),
            "one per scheme",
        ),
        ({"turn_secret": "two words"}, TurnOptions(), "one word"),
        ({"ice_servers": ("turn:bad host",)}, TurnOptions(), "cannot read"),
    ],
)
def test_settings_that_cannot_be_matched_are_refused(
    overrides: dict[str, object], options: TurnOptions, message: str
) -> None:
    """No secret, no realm, turns: without certificates, conflicting ports: ValueError."""
    with pytest.raises(ValueError, match=message):
        coturn_config(settings(**overrides), options)


def test_a_realm_given_without_a_turn_url_uses_the_default_ports() -> None:
    """--realm alone is enough: coturn listens on 3478."""
    text = coturn_config(settings(ice_servers=()), TurnOptions(realm="calls.example.com"))
    assert values(text, "realm") == ["calls.example.com"]
    assert values(text, "listening-port") == ["3478"]


@pytest.mark.parametrize(
    "options",
    [
        {"min_port": 60000, "max_port": 50000},
        {"min_port": 0},
        {"cert": Path("/a.pem")},
        {"realm": "example.com\nallow-loopback-peers"},
        {"cert": Path("/a b.pem"), "pkey": Path("/a.key")},
        {"relay_ips": ("not-an-ip",)},
        {"external_ip": "1.2.3.4/nope"},
    ],
)
def test_bad_options_are_refused(options: dict[str, object]) -> None:
    """Inverted port ranges, a lone cert, a value that could add a line, a bad address."""
    with pytest.raises(ValueError):
        TurnOptions(**options)  # type: ignore[arg-type]


def test_every_line_is_a_known_coturn_setting() -> None:
    """The full output (TLS, relay and exception lines included) uses only coturn's keys."""
    known = {
        "use-auth-secret", "static-auth-secret", "realm", "fingerprint", "stale-nonce",
        "listening-port", "tls-listening-port", "cert", "pkey", "no-tlsv1", "no-tlsv1_1",
        "no-tls", "no-dtls", "min-port", "max-port", "relay-ip", "external-ip",
        "no-multicast-peers", "denied-peer-ip", "allowed-peer-ip", "no-cli",
        "no-software-attribute",
    }  # fmt: skip
    for options in (
        TurnOptions(relay_ips=("10.0.0.5",), external_ip="1.2.3.4/10.0.0.5"),
        TurnOptions(cert=Path("/c.pem"), pkey=Path("/k.pem")),
    ):
        text = coturn_config(settings(ice_allowed_networks=parse_networks("10.9.0.0/16")), options)
        assert {line.split("=", 1)[0] for line in lines(text)} <= known


def test_the_command_prints_the_config_of_the_environments_settings() -> None:
    """``tavkit turn config`` reads TAVKIT_* like ``serve`` and prints coturn_config's text."""
    env = {
        "TAVKIT_TURN_SECRET": SECRET,
        "TAVKIT_ICE_SERVERS": URLS,
        "TAVKIT_ICE_ALLOWED_NETWORKS": "10.200.0.0/16",
    }
    result = CliRunner().invoke(app, ["turn", "config", "--relay-ip", "10.200.0.1"], env=env)
    assert result.exit_code == 0, result.output
    expected = coturn_config(Settings.from_env(env), TurnOptions(relay_ips=("10.200.0.1",)))
    assert result.stdout == expected


def test_the_command_explains_a_missing_secret() -> None:
    """Without TAVKIT_TURN_SECRET the command exits 2 and says what to set."""
    result = CliRunner().invoke(
        app, ["turn", "config", "--realm", "x.example"], env={"TAVKIT_TURN_SECRET": ""}
    )
    assert result.exit_code == 2
    assert "TAVKIT_TURN_SECRET" in result.stderr
