"""Chromium across the lab's two symmetric NATs, with a Python client and with another Chromium.

Each browser runs in a site's host namespace (see :mod:`browser`), ``sym1`` or
``sym2``: both behind symmetric NATs, where no direct pair can work (see
:mod:`test_nat`), so the call depends on the ``relay`` server's TURN credentials
and coturn. The page is the server's embed page, started with a userSig the test
signs; the Python side is ``_client.py``, as in :mod:`test_nat`.

Each test asserts what the users would see, the other party's video frames rendered
and its audio samples arriving (and the Python client's frames decoded), and that
each side's pair in use, from ``getStats()`` in the browser, has a relay candidate at
one end. Times to the first decoded frame are printed, for information only.
"""

from __future__ import annotations

import contextlib
import json
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest
from browser.pages import CallPage
from playwright.sync_api import Browser

from .browser import open_tab, selected_pair, wait_decoding
from .conftest import APP_ID, HERE, REPORT_MARGIN, LabServer, Report, _first_line, clean_env
from .lab import NatLab

pytestmark = [pytest.mark.netlab, pytest.mark.browser]

LabBrowsers = Callable[[str], Browser]

CONNECT_WAIT = 30.0
"""The most a side may take to connect, and then to show each kind of media."""
FRAMES = 10


def show(label: str, *reports: Report) -> None:
    """Print each side's outcome (pytest -s shows it; for information)."""
    for report in reports:
        keys = ("userId", "arrived", "pair", "gathered", "firstVideoMs")
        print(f"{label}: " + json.dumps({key: report.get(key) for key in keys}))


def join(tab: CallPage, server: LabServer, room: int) -> float:
    """Start ``tab``'s call in ``room`` with a userSig the test signs; when it started."""
    started = time.monotonic()
    assert tab.start(room, sdkAppId=APP_ID, userSig=server.sig(tab.user_id)) is True
    return started


PAIR_WAIT = 5.0
"""Seconds to wait for the stats to name the candidate pair in use, once media flows."""


def receive(tab: CallPage, peer: str, started: float) -> Report:
    """Wait until ``tab`` renders ``peer``'s video and its audio arrives; what it used.

    Returns a report shaped like ``_client.py``'s: ``arrived``, ``pair`` and
    ``gathered`` (see :func:`browser.selected_pair`), ``firstVideoMs`` from ``started``.
    """
    tab.wait_connected(peer, timeout=CONNECT_WAIT * 1000)
    wait_decoding(tab, peer, CONNECT_WAIT)
    first = round((time.monotonic() - started) * 1000)
    frames = tab.video_frames(peer, frames=FRAMES, timeout=CONNECT_WAIT * 1000)
    tab.wait_audio_rising(peer, timeout=CONNECT_WAIT * 1000)
    arrived = frames["frames"] >= FRAMES and frames["last"] > frames["first"]
    report: Report = {"userId": tab.user_id, "arrived": arrived, "firstVideoMs": first}
    # Chromium's stats name no selected pair for a moment while a peer-reflexive pair
    # takes over (seen once, with the video already flowing): ask again, a few times.
    deadline = time.monotonic() + PAIR_WAIT
    while (pair := selected_pair(tab, peer))["pair"] is None and time.monotonic() < deadline:
        time.sleep(0.2)
    return {**report, **pair, "errors": tab.tv("errors")}


def relayed(report: Report) -> bool:
    """Whether the report's pair in use has a relay candidate at either end."""
    pair: dict[str, Any] | None = report["pair"]
    return pair is not None and "relay" in (pair["local"], pair["remote"])


@contextlib.contextmanager
def python_client(
    nat_lab: NatLab, server: LabServer, site: str, log: Path, *, user: str, peer: str, room: int
) -> Iterator[Future[Report]]:
    """Run ``_client.py`` as ``user`` in ``site``'s host; its report, once it has one.

    The call stays up until the block ends (the browser keeps receiving meanwhile);
    then the client hangs up, or is stopped if it never reported.
    """
    options = {
        "server": server.url,
        "sdkAppId": APP_ID,
        "userId": user,
        "userSig": server.sig(user),
        "roomId": room,
        "peer": peer,
        "within": CONNECT_WAIT,
        "frames": FRAMES,
    }
    argv = [sys.executable, str(HERE / "_client.py"), json.dumps(options)]
    with log.open("w") as err:
        process = nat_lab.spawn(
            nat_lab.host(site), argv, env=clean_env(), stdin=subprocess.PIPE, stderr=err
        )
    with ThreadPoolExecutor(1) as pool:
        report = pool.submit(_first_line, process, log)
        try:
            yield report
        finally:
            if report.done() and process.stdin is not None:
                process.stdin.close()
                with contextlib.suppress(subprocess.TimeoutExpired):
                    process.wait(30)  # hangs up and exits on its own; else stopped
            nat_lab.stop(process)


def test_chromium_and_python_call_across_symmetric_nats_through_coturn(
    nat_lab: NatLab,
    tavkit_servers: dict[str, LabServer],
    lab_browsers: LabBrowsers,
    tmp_path: Path,
) -> None:
    """Chromium behind one symmetric NAT, Python behind another: media both ways, relayed."""
    server, room = tavkit_servers["relay"], 1511
    log = tmp_path / "client-py.log"
    with (
        python_client(nat_lab, server, "sym2", log, user="py", peer="web", room=room) as py,
        open_tab(lab_browsers("sym1"), server.url, "web") as tab,
    ):
        web = receive(tab, "py", join(tab, server, room))
        python = py.result(CONNECT_WAIT + REPORT_MARGIN)
    show("chromium-python", web, python)
    for report in (web, python):
        assert report["arrived"], report
        assert "relay" in report["gathered"], report
        assert relayed(report), report
        assert report["errors"] == [], report


def test_two_chromiums_call_across_symmetric_nats_through_coturn(
    tavkit_servers: dict[str, LabServer], lab_browsers: LabBrowsers
) -> None:
    """Chromium behind each symmetric NAT: each renders the other's video, hears it, relayed."""
    server, room = tavkit_servers["relay"], 1512
    with (
        open_tab(lab_browsers("sym1"), server.url, "a") as a,
        open_tab(lab_browsers("sym2"), server.url, "b") as b,
    ):
        started = {tab.user_id: join(tab, server, room) for tab in (a, b)}
        reports = [receive(a, "b", started["a"]), receive(b, "a", started["b"])]
    show("chromium-chromium", *reports)
    for report in reports:
        assert report["arrived"], report
        assert "relay" in report["gathered"], report
        assert relayed(report), report
        assert report["errors"] == [], report


_ICE_UFRAG = """
(userId) => {
  const pc = document.getElementById("call").peerConnections().get(userId);
  const sdp = pc && pc.localDescription ? pc.localDescription.sdp : "";
  const match = /^a=ice-ufrag:(\\S+)/m.exec(sdp);
  return match ? match[1] : null;
}
"""


@pytest.fixture(scope="module")
def roaming_site(nat_lab: NatLab) -> str:
    """A site of this module's own whose host has a second uplink, ``wroam4g`` (down)."""
    nat_lab.add_site("wroam", "symmetric")
    nat_lab.add_uplink("wroam", "wroam4g", "symmetric")
    return "wroam"


def test_chromium_switching_networks_restarts_ice_and_the_call_goes_on(
    nat_lab: NatLab,
    tavkit_servers: dict[str, LabServer],
    lab_browsers: LabBrowsers,
    roaming_site: str,
    tmp_path: Path,
) -> None:
    """Chromium leaves its Wi-Fi for mobile data mid-call: ICE restarts, video comes back.

    The new network has another local and public address, so the old path is dead:
    the page's socket resumes from the new one and its peer connection restarts ICE
    (new credentials in its local description), and the Python peer's video renders
    again, without anyone leaving.
    """
    server, room = tavkit_servers["relay"], 1513
    log = tmp_path / "client-py.log"
    with (
        python_client(nat_lab, server, "sym2", log, user="py", peer="web", room=room) as py,
        open_tab(lab_browsers(roaming_site), server.url, "web") as tab,
    ):
        receive(tab, "py", join(tab, server, room))
        assert py.result(CONNECT_WAIT + REPORT_MARGIN)["arrived"]
        ufrag = tab.page.evaluate(_ICE_UFRAG, "py")
        switched = time.monotonic()
        nat_lab.switch_uplink(roaming_site, "wroam4g")
        tab.page.wait_for_function(
            f"(u) => ({_ICE_UFRAG})('py') !== u", arg=ufrag, timeout=CONNECT_WAIT * 1000
        )
        tab.wait_connected("py", timeout=CONNECT_WAIT * 1000)
        frames = tab.video_frames("py", frames=FRAMES, timeout=CONNECT_WAIT * 1000)
        print(f"chromium video again {time.monotonic() - switched:.1f} s after the switch")
        assert frames["frames"] >= FRAMES and frames["last"] > frames["first"], frames
        assert tab.events("tavkit:user-leave") == []
        assert tab.state() == "in-call"
