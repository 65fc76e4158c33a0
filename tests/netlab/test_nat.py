"""Python clients calling each other across NATs in the lab, with and without coturn.

What the NAT kinds imply (see :mod:`lab`): a symmetric NAT gives every new flow a
new public port, so the mapping a STUN server reports is not the one a peer would
have to reach; Linux conntrack lets in only replies to flows started inside. So:

* symmetric to symmetric with STUN only: no pair can succeed; ICE never connects.
* cone to symmetric with STUN only: the cone side's mapping is stable, but its
  filter drops the symmetric side's checks, which come from unannounced ports; the
  symmetric side's filter drops the cone side's checks to its STUN-reported port.
  No pair succeeds either (the cone NAT is full-cone in its mapping only).
* with coturn as TURN: the relayed address is one fixed address whose packets come
  back through each NAT as replies, so the call connects through the relay.
* cone to a host with a public address: a direct pair (the control showing the lab
  routes direct traffic, so the failures above are the NATs' doing).

The failing calls are given a bounded wait (:data:`NO_CONNECT_WAIT`) that is several
times what the relayed calls need here, and the assertion is on the ICE state and
the frames at its end, never on how long anything took. Each client reports its
time to first video frame (``firstVideoMs``), printed for information only.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest

from .conftest import HERE, Call, LabServer, Report
from .lab import NatLab

pytestmark = pytest.mark.netlab

NO_CONNECT_WAIT = 8.0
"""How long a call that must not connect is watched: several times what the relayed calls
here need to decode their first frames (about one second)."""
CONNECT_WAIT = 30.0
"""The most a call that must connect may take before the client reports failure."""
ECHO_PORTS = (7001, 7002)


def show(label: str, *reports: Report) -> None:
    """Print the reports' outcome lines (pytest -s shows them; for information)."""
    for report in reports:
        keys = ("userId", "arrived", "iceState", "pair", "gathered", "firstVideoMs")
        print(f"{label}: " + json.dumps({key: report[key] for key in keys}))


def test_the_nat_kinds_map_flows_as_named(nat_lab: NatLab) -> None:
    """The cone NAT keeps one public port for two destinations; the symmetric one does not."""
    probe = str(HERE / "_udp_probe.py")
    ports = [str(port) for port in ECHO_PORTS]
    echo = nat_lab.spawn(
        nat_lab.public_ns, [sys.executable, probe, "serve", nat_lab.public_ip, *ports]
    )
    try:
        assert echo.stdout is not None and echo.stdout.readline().strip() == "ready"
        seen = {}
        for name in ("cone", "sym1"):
            site = nat_lab.sites[name]
            asked = nat_lab.spawn(
                site.host_ns, [sys.executable, probe, "ask", nat_lab.public_ip, *ports]
            )
            out, _ = asked.communicate(timeout=30)
            seen[name] = json.loads(out)
            assert all(entry.startswith(f"{site.wan_ip}:") for entry in seen[name]), seen
    finally:
        nat_lab.stop(echo)
    assert len(set(seen["cone"])) == 1, f"cone: {seen['cone']}"
    assert len(set(seen["sym1"])) == len(ECHO_PORTS), f"symmetric: {seen['sym1']}"


def test_coturn_runs_the_config_tavkit_turn_config_prints(coturn: Path) -> None:
    """coturn started from ``tavkit turn config``'s output without a configuration complaint."""
    log = coturn.read_text(errors="replace")
    assert "static-auth-secret" not in log
    for complaint in ("Bad configuration", "unknown option", "CONFIG ERROR"):
        assert complaint.lower() not in log.lower(), log


def test_a_cone_client_reaches_a_public_host_directly(
    nat_lab: NatLab, tavkit_servers: dict[str, LabServer], call: Call
) -> None:
    """Control: behind the cone NAT, with STUN only, a call to a public host connects directly."""
    a, b = call(tavkit_servers["direct"], "cone", "public", room=1501, within=CONNECT_WAIT)
    show("cone-public", a, b)
    for report in (a, b):
        assert report["arrived"], report
        assert report["pair"] is not None and "relay" not in report["pair"].values(), report


def test_two_symmetric_nats_without_turn_never_connect(
    nat_lab: NatLab, tavkit_servers: dict[str, LabServer], call: Call
) -> None:
    """Both behind symmetric NATs, STUN only: ICE never connects; no frame arrives."""
    a, b = call(tavkit_servers["direct"], "sym1", "sym2", room=1502, within=NO_CONNECT_WAIT)
    show("sym-sym direct", a, b)
    for report in (a, b):
        assert "srflx" in report["gathered"], report  # STUN answered: the NATs are the cause
        # "new": the client's stall watch may have replaced a failed connection by then
        assert report["iceState"] in ("new", "checking", "failed"), report
        assert report["pair"] is None, report
        assert report["videoFrames"] == 0 and report["audioFrames"] == 0, report


def test_two_symmetric_nats_connect_through_coturn(
    tavkit_servers: dict[str, LabServer], call: Call
) -> None:
    """Both behind symmetric NATs, with coturn: frames arrive and each side's pair relays.

    One relayed end is enough (seen here: one host sends from its own socket to the
    other's relayed address; its NAT lets the relay's answers back in as replies).
    """
    a, b = call(tavkit_servers["relay"], "sym1", "sym2", room=1503, within=CONNECT_WAIT)
    show("sym-sym relay", a, b)
    for report in (a, b):
        assert report["arrived"], report
        assert report["iceState"] == "completed", report
        assert "relay" in report["gathered"], report
        assert report["pair"] is not None and "relay" in report["pair"].values(), report


def test_cone_and_symmetric_without_turn_never_connect(
    tavkit_servers: dict[str, LabServer], call: Call
) -> None:
    """Cone to symmetric, STUN only: conntrack's filtering on both sides leaves no pair."""
    a, b = call(tavkit_servers["direct"], "cone", "sym1", room=1504, within=NO_CONNECT_WAIT)
    show("cone-sym direct", a, b)
    for report in (a, b):
        assert "srflx" in report["gathered"], report
        # "new": the client's stall watch may have replaced a failed connection by then
        assert report["iceState"] in ("new", "checking", "failed"), report
        assert report["pair"] is None, report
        assert report["videoFrames"] == 0 and report["audioFrames"] == 0, report


def test_cone_and_symmetric_connect_through_coturn(
    tavkit_servers: dict[str, LabServer], call: Call
) -> None:
    """Cone to symmetric with coturn: the call connects, and the selected pair relays.

    Which side's relayed address is used is ICE's choice (seen here both ways, from
    run to run); what the NATs imply is only that no direct pair exists, so every
    working pair has a relay at one end.
    """
    cone, symmetric = call(tavkit_servers["relay"], "cone", "sym1", room=1505, within=CONNECT_WAIT)
    show("cone-sym relay", cone, symmetric)
    for report in (cone, symmetric):
        assert report["arrived"], report
        assert report["iceState"] == "completed", report
        assert report["pair"] is not None and "relay" in report["pair"].values(), report
