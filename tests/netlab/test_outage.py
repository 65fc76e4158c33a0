"""Calls that survive: a site's uplink drops and returns, or its host switches networks.

Two Python clients (``_outage_client.py``) behind symmetric NATs call each other
through coturn, on a tavkit server with 2 s heartbeats and a 15 s heartbeat
timeout. Each test then breaks client ``a``'s network the way a phone's breaks:

* a 10 s outage (inside the timeout): ``a``'s NAT box drops everything, then
  forwards again. ``a`` resumes its membership; ``b`` saw ``a`` reconnecting and then
  connected, never leaving, and ``a``'s video comes back.
* a 40 s outage (beyond the timeout): the server lets ``a`` go (``b`` sees it leave,
  ``timeout``); when the network returns ``a`` enters again by itself and the call
  goes on in the same session.
* a network switch: ``a``'s host takes its Wi-Fi down and routes through a second
  uplink (another NAT, another public address); its sockets' old paths are dead.
  The signaling socket resumes from the new address and the media link is restarted
  on a new connection (ICE restart, in aiortc's terms), and video flows again.

The clients report their timelines on request; the tests poll them with bounded
waits and assert on the order of what happened, never on how long it took. The
recovery times are printed for information (``bench/network.py`` measures them).
"""

from __future__ import annotations

import contextlib
import json
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest

from .conftest import APP_ID, APP_KEY, HERE, TURN_ENV, LabServer, clean_env, start_tavkit
from .lab import NatLab

pytestmark = pytest.mark.netlab

HEARTBEAT_FLAGS = ("--heartbeat-interval", "2", "--heartbeat-timeout", "15")
SHORT_OUTAGE = 10.0
LONG_OUTAGE = 40.0
READY_WAIT = 30.0
RECOVERY_WAIT = 60.0
"""The most a recovery may take before the test gives up (it takes seconds here)."""

Report = dict[str, Any]


@pytest.fixture(scope="module")
def outage_server(
    nat_lab: NatLab, coturn: Path, tmp_path_factory: pytest.TempPathFactory
) -> LabServer:
    """A TURN-enabled tavkit with short heartbeats, so outages cross the timeout quickly."""
    env = {"TAVKIT_APPS": f"{APP_ID}:{APP_KEY}", **TURN_ENV}
    workdir = tmp_path_factory.mktemp("tavkit-outage")
    return start_tavkit(nat_lab, workdir, "outage", env, port=8095, flags=HEARTBEAT_FLAGS)


@pytest.fixture(scope="module")
def sites(nat_lab: NatLab) -> dict[str, str]:
    """Sites of this module's own, so its outages and switches touch no other test."""
    nat_lab.add_site("down", "symmetric")
    nat_lab.add_site("roam", "symmetric")
    nat_lab.add_uplink("roam", "roam4g", "symmetric")
    nat_lab.add_site("peer", "symmetric")
    return {"down": "down", "roam": "roam", "peer": "peer"}


class Participant:
    """One ``_outage_client.py`` in a site's host, asked for its timeline over stdin."""

    def __init__(
        self, nat_lab: NatLab, site: str, server: LabServer, user: str, peer: str, room: int,
        log: Path,
    ) -> None:  # fmt: skip
        options = {
            "server": server.url,
            "sdkAppId": APP_ID,
            "userId": user,
            "userSig": server.sig(user),
            "roomId": room,
            "peer": peer,
            "within": READY_WAIT,
        }
        argv = [sys.executable, str(HERE / "_outage_client.py"), json.dumps(options)]
        self.log = log
        self._lab = nat_lab
        with log.open("w") as err:
            self.process = nat_lab.spawn(
                nat_lab.host(site), argv, env=clean_env(), stdin=subprocess.PIPE, stderr=err
            )
        self._pool = ThreadPoolExecutor(1)

    def _line(self, within: float) -> Report:
        assert self.process.stdout is not None
        line = self._pool.submit(self.process.stdout.readline).result(within)
        if not line:
            self.process.wait(30)
            raise AssertionError(f"the client said nothing:\n{self.log.read_text()}")
        report: Report = json.loads(line)
        return report

    def ready(self) -> Report:
        """The first line: whether the peer's media arrived."""
        return self._line(READY_WAIT + 60)

    def report(self) -> Report:
        """The timeline so far."""
        assert self.process.stdin is not None
        self.process.stdin.write("report\n")
        self.process.stdin.flush()
        return self._line(30)

    def close(self) -> None:
        """Hang up and stop."""
        if self.process.stdin is not None:
            with contextlib.suppress(OSError):
                self.process.stdin.close()
        with contextlib.suppress(subprocess.TimeoutExpired):
            self.process.wait(30)
        self._lab.stop(self.process)
        self._pool.shutdown(wait=False)


@pytest.fixture
def call_pair(
    nat_lab: NatLab, outage_server: LabServer, tmp_path: Path
) -> Iterator[Callable[[str, str, int], tuple[Participant, Participant]]]:
    """Start ``a`` in one site and ``b`` in another, in a room; both see each other."""
    started: list[Participant] = []

    def start(site_a: str, site_b: str, room: int) -> tuple[Participant, Participant]:
        a = Participant(nat_lab, site_a, outage_server, "a", "b", room, tmp_path / "a.log")
        b = Participant(nat_lab, site_b, outage_server, "b", "a", room, tmp_path / "b.log")
        started.extend((a, b))
        with ThreadPoolExecutor(2) as pool:
            ready = list(pool.map(Participant.ready, (a, b)))
        assert all(r["ready"] for r in ready), (ready, a.log.read_text(), b.log.read_text())
        return a, b

    yield start
    for participant in started:
        participant.close()


def frames_at(report: Report, when: float) -> int:
    """How many video frames the reporter had decoded at ``when`` (wall clock)."""
    before = [frames for t, frames in report["video"] if t <= when]
    return int(before[-1]) if before else 0


def video_again_at(report: Report, since: float) -> float | None:
    """When decoded video first grew after ``since`` (None: not yet)."""
    base = frames_at(report, since)
    return next((t for t, frames in report["video"] if t > since and frames > base + 5), None)


def wait_for(participant: Participant, done: Callable[[Report], bool]) -> Report:
    """Ask for reports until ``done(report)`` (at most :data:`RECOVERY_WAIT` seconds)."""
    deadline = time.monotonic() + RECOVERY_WAIT
    report = participant.report()
    while not done(report) and time.monotonic() < deadline:
        time.sleep(0.5)
        report = participant.report()
    return report


def events(report: Report, name: str, after: float = 0.0) -> list[list[Any]]:
    """The reporter's ``name`` events after ``after``, without their times."""
    return [e[2:] for e in report["events"] if e[1] == name and e[0] > after]


def outage(nat_lab: NatLab, site: str, seconds: float) -> tuple[float, float]:
    """Take ``site``'s uplink down for ``seconds``; when it went down and came back."""
    cut_at = time.time()
    nat_lab.cut(site)
    try:
        time.sleep(seconds)
    finally:
        nat_lab.restore(site)
    return cut_at, time.time()


def video_back(viewer: Participant, since: float, what: str) -> Report:
    """Wait until ``viewer`` decodes video again after ``since``; its report then."""
    seen = wait_for(viewer, lambda r: video_again_at(r, since) is not None)
    back = video_again_at(seen, since)
    assert back is not None, f"video never came back: {seen['video'][-5:]}"
    print(f"video back {back - since:.2f} s after {what}")
    return seen


def test_a_short_outage_is_ridden_out_and_the_peer_sees_reconnecting(
    nat_lab: NatLab, sites: dict[str, str], call_pair: Any
) -> None:
    """10 s without network: ``a`` resumes the same membership, ``b`` saw it reconnecting."""
    a, b = call_pair(sites["down"], sites["peer"], 3101)
    cut_at, restored_at = outage(nat_lab, sites["down"], SHORT_OUTAGE)
    video_back(b, restored_at, "the network returned")
    seen = wait_for(b, lambda r: ["a", "connected"] in events(r, "on_user_connection", cut_at))
    assert events(seen, "on_user_connection", cut_at) == [["a", "reconnecting"], ["a", "connected"]]
    assert events(seen, "on_user_leave") == []
    own = a.report()
    assert own["resumes"] >= 1 and not own["closed"], own
    assert own["roomUuid"] == seen["roomUuid"]


def test_an_outage_past_the_timeout_ends_in_a_rejoin_not_a_hang_up(
    nat_lab: NatLab, sites: dict[str, str], call_pair: Any
) -> None:
    """40 s without network: the server lets ``a`` go, and ``a`` enters again by itself."""
    a, b = call_pair(sites["down"], sites["peer"], 3102)
    cut_at, restored_at = outage(nat_lab, sites["down"], LONG_OUTAGE)
    seen = video_back(b, restored_at, "the network returned")
    assert events(seen, "on_user_leave", cut_at) == [["a", "timeout"]]
    assert events(seen, "on_user_enter", cut_at) == [["a"]]
    own = a.report()
    assert not own["closed"], own
    assert own["roomUuid"] == seen["roomUuid"]  # b kept the session open: the same call


def test_a_network_switch_restarts_the_media_path_and_the_call_goes_on(
    nat_lab: NatLab, sites: dict[str, str], call_pair: Any
) -> None:
    """``a`` leaves Wi-Fi for mobile data: new addresses, the link restarts, video flows."""
    a, b = call_pair(sites["roam"], sites["peer"], 3103)
    switched_at = time.time()
    nat_lab.switch_uplink(sites["roam"], "roam4g")

    seen = video_back(b, switched_at + 1.0, "the switch (+1 s)")
    own = a.report()
    assert own["resumes"] >= 1 and not own["closed"], own
    assert own["rebuilds"] + seen["rebuilds"] >= 1  # a new connection, not the old path
    assert events(seen, "on_user_leave") == []
