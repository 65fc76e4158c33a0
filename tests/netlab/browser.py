"""Chromium inside a NAT lab site: Playwright drives a browser whose network is the site's.

Playwright starts whatever ``executable_path`` names and talks to it over two pipes
(``--remote-debugging-pipe``, file descriptors 3 and 4), never over the network. So
the executable here is a two-line script, ``exec ip netns exec <ns> chromium "$@"``:
``ip netns exec`` keeps those descriptors open, and the browser, with every process
it starts (the network service that opens the ICE sockets included), lives in the
site's host namespace, behind its NAT. Nothing in the root namespace is reachable
from there, and nothing needs to be.

The page is the server's ``/tavkit/demo/embed.html`` (as in ``tests/browser``), loaded
from the public address over plain http. That origin is not a secure context, so
camera and microphone would be refused; ``--unsafely-treat-insecure-origin-as-secure``
names the lab servers' origins, as an operator's HTTPS would make them secure.

:class:`LabBrowsers` starts one Chromium per site on first use (starting Chromium is
the slow part) and closes them all at the end; :func:`open_tab` opens a fresh context
per tab; :func:`selected_pair` reads the candidate pair in use from ``getStats()``.
"""

from __future__ import annotations

import contextlib
import shlex
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from browser.conftest import CHROMIUM, FLAGS
from browser.pages import INSTRUMENT, POLL, CallPage
from playwright.sync_api import Browser, Playwright, sync_playwright
from playwright.sync_api import Error as PlaywrightError

from .lab import NatLab

LAB_FLAGS = [flag for flag in FLAGS if flag != "--allow-loopback-in-peer-connection"]
"""The real-browser suite's flags, less loopback ICE (the lab's candidates never are).

No Local Network Access flag: the page's origin and every address it reaches are
private ones, so Chromium has nothing to ask about (seen with Chromium 156)."""

_SELECTED_PAIR = """
async (userId) => {
  const pc = document.getElementById("call").peerConnections().get(userId);
  if (!pc) return null;
  const stats = [...(await pc.getStats()).values()];
  const byId = new Map(stats.map((s) => [s.id, s]));
  const transport = stats.find((s) => s.type === "transport" && s.selectedCandidatePairId);
  const pair = transport
    ? byId.get(transport.selectedCandidatePairId)
    : stats.find((s) => s.type === "candidate-pair" && s.nominated && s.state === "succeeded");
  const gathered = [...new Set(
    stats.filter((s) => s.type === "local-candidate").map((s) => s.candidateType))].sort();
  if (!pair || pair.state !== "succeeded") return { pair: null, gathered };
  const local = byId.get(pair.localCandidateId);
  const remote = byId.get(pair.remoteCandidateId);
  // Chromium leaves out the address of a peer-reflexive remote candidate.
  const at = (c) => `${c.address || "(not shown)"}:${c.port}`;
  return {
    pair: {
      local: local.candidateType,
      remote: remote.candidateType,
      localAddress: at(local),
      remoteAddress: at(remote),
      relayProtocol: local.relayProtocol ?? null,
    },
    gathered,
  };
}
"""

_DECODING = """
async (userId) => {
  const pc = document.getElementById("call").peerConnections().get(userId);
  if (!pc) return false;
  for (const report of (await pc.getStats()).values()) {
    if (report.type === "inbound-rtp" && report.kind === "video" && report.framesDecoded > 0) {
      return true;
    }
  }
  return false;
}
"""


def wrapper(ns: str, directory: Path) -> Path:
    """Write an executable that runs Chromium, with its arguments, inside namespace ``ns``."""
    script = directory / f"chromium-{ns}"
    script.write_text(f'#!/bin/sh\nexec ip netns exec {shlex.quote(ns)} {CHROMIUM} "$@"\n')
    script.chmod(0o755)
    return script


def origin(url: str) -> str:
    """``scheme://host:port`` of ``url``."""
    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.netloc}"


class LabBrowsers:
    """One headless Chromium per lab site, started on first use: ``browsers("sym1")``."""

    def __init__(self, nat_lab: NatLab, directory: Path, secure_origins: Sequence[str]) -> None:
        self.nat_lab = nat_lab
        self.directory = directory
        secure = ",".join(origin(url) for url in secure_origins)
        self.flags = [*LAB_FLAGS, f"--unsafely-treat-insecure-origin-as-secure={secure}"]
        self._playwright: Playwright | None = None
        self._started: Any = None
        self._browsers: dict[str, Browser] = {}

    def __enter__(self) -> LabBrowsers:
        self._started = sync_playwright()
        self._playwright = self._started.__enter__()
        return self

    def __exit__(self, *exc: object) -> None:
        try:
            for browser in self._browsers.values():
                with contextlib.suppress(PlaywrightError):  # one that died is closed already
                    browser.close()
        finally:
            self._browsers.clear()
            self._started.__exit__(None, None, None)

    def __call__(self, site: str) -> Browser:
        """The Chromium running in ``site``'s host namespace (a site name, or ``public``)."""
        if site not in self._browsers:
            assert self._playwright is not None, "use LabBrowsers as a context manager"
            ns = self.nat_lab.host(site)
            self._browsers[site] = self._playwright.chromium.launch(
                executable_path=str(wrapper(ns, self.directory)), args=self.flags
            )
        return self._browsers[site]


@contextlib.contextmanager
def open_tab(browser: Browser, base_url: str, user_id: str) -> Iterator[CallPage]:
    """A ``<tavkit-call>`` page for ``user_id`` in a fresh context, closed afterwards."""
    context = browser.new_context(viewport={"width": 640, "height": 480})
    context.add_init_script(INSTRUMENT)
    try:
        yield CallPage(context.new_page(), base_url, user_id)
    finally:
        context.close()


def selected_pair(tab: CallPage, user_id: str) -> dict[str, Any]:
    """The pair in use toward ``user_id`` (candidate types and addresses) and what was gathered.

    ``{"pair": {"local", "remote", "localAddress", "remoteAddress", "relayProtocol"} |
    None, "gathered": [local candidate types]}``: the transport's selected pair, or
    else the nominated succeeded one, as ``getStats()`` reports them. ``gathered``
    lists the local candidates' types, each once; it includes ``prflx`` when checks
    found the host behind an address it did not gather.
    """
    result: dict[str, Any] = tab.page.evaluate(_SELECTED_PAIR, user_id)
    return result or {"pair": None, "gathered": []}


def wait_decoding(tab: CallPage, user_id: str, timeout: float) -> None:
    """Wait (at most ``timeout`` seconds) until a video frame from ``user_id`` was decoded."""
    tab.page.wait_for_function(_DECODING, arg=user_id, timeout=timeout * 1000, polling=POLL)
