"""A participant in a real Chromium: ``<tavkit-call>`` on the server's embed page.

:class:`Browsers` launches one headless Chromium (Playwright's async API) the first
time a test asks for a browser participant, with fake camera and microphone devices
and the permission prompt answered; each :class:`BrowserParticipant` is a fresh
context and page on the server's ``/tavkit/demo/embed.html`` whose element is started
with a userSig the server fixture minted. The Chromium is ``TAVKIT_CHROMIUM``, else
``/usr/bin/chromium``, else Playwright's own download; if neither Playwright nor a
Chromium is there, :func:`find_chromium` says why and the fixture skips.
"""

from __future__ import annotations

import importlib.util
import os
import shutil
from typing import TYPE_CHECKING, Any

from tavkit.testing._wait import TIMEOUT

if TYPE_CHECKING:
    from tavkit.testing.server import RunningServer

__all__ = ["BrowserParticipant", "Browsers", "find_chromium"]

FLAGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--use-fake-device-for-media-stream=fps=30",
    "--use-fake-ui-for-media-stream",
    "--allow-loopback-in-peer-connection",
]

_START = """
async (options) => {
  window.__tavkitTesting = { errors: [] };
  options.listener = {
    onErrorListener(error) { window.__tavkitTesting.errors.push(error); },
  };
  return await document.getElementById("call").start(options);
}
"""

_FRAMES_DECODED = """
async (userId) => {
  const pc = document.getElementById("call").peerConnections().get(userId);
  if (!pc) return 0;
  let total = 0;
  for (const report of (await pc.getStats()).values()) {
    if (report.type === "inbound-rtp" && report.kind === "video") {
      total += report.framesDecoded || 0;
    }
  }
  return total;
}
"""


def find_chromium() -> tuple[str | None, str | None]:
    """(the Chromium executable or ``None`` for Playwright's own, why not) - ``why`` is set
    when no browser participant can be made here."""
    if importlib.util.find_spec("playwright") is None:
        return None, "Playwright is not installed (pip install playwright)"
    for candidate in (os.environ.get("TAVKIT_CHROMIUM"), "/usr/bin/chromium"):
        if candidate and shutil.which(candidate):
            return candidate, None
    return None, None  # Playwright's own browser, if it was downloaded; launch() tells


class BrowserParticipant:
    """One ``<tavkit-call>`` tab in a room."""

    def __init__(self, page: Any, user_id: str, room_id: int) -> None:
        self.page = page
        self.user_id = user_id
        self.room_id = room_id

    async def errors(self) -> list[dict[str, Any]]:
        """What the element reported to ``onErrorListener``."""
        errors: list[dict[str, Any]] = await self.page.evaluate("window.__tavkitTesting.errors")
        return errors

    async def video_frames_from(self, user_id: str) -> int:
        """Video frames the page decoded from ``user_id`` (its inbound-rtp ``framesDecoded``)."""
        return int(await self.page.evaluate(_FRAMES_DECODED, user_id))

    async def wait_for_video_from(
        self, user_id: str, frames: int = 30, *, within: float = TIMEOUT
    ) -> None:
        """Wait until the page has decoded ``frames`` video frames from ``user_id``."""
        await self.page.wait_for_function(
            f"async ([id, n]) => ({_FRAMES_DECODED})(id).then((got) => got >= n)",
            arg=[user_id, frames],
            timeout=within * 1000,
            polling=100,
        )

    async def leave(self) -> None:
        """Hang up (``hangup()`` of the element)."""
        await self.page.evaluate("document.getElementById('call').hangup()")


class Browsers:
    """One Chromium for a test, launched on first use; every page closed with it."""

    def __init__(self, server: RunningServer) -> None:
        self.server = server
        self._playwright: Any = None
        self._browser: Any = None
        self._contexts: list[Any] = []

    async def enter(self, user_id: str, room_id: int = 1) -> BrowserParticipant:
        """Open a page as ``user_id`` and start the call in ``room_id``."""
        if self._browser is None:
            from playwright.async_api import async_playwright

            executable, _ = find_chromium()
            self._playwright = await async_playwright().start()
            self._browser = await self._playwright.chromium.launch(
                executable_path=executable, args=FLAGS
            )
        context = await self._browser.new_context()
        self._contexts.append(context)
        page = await context.new_page()
        await page.goto(f"{self.server.url}/tavkit/demo/embed.html")
        await page.wait_for_function("customElements.get('tavkit-call') !== undefined")
        await page.evaluate(
            _START,
            {
                "sdkAppId": self.server.app_id,
                "userId": user_id,
                "userSig": self.server.sig(user_id),
                "roomId": room_id,
            },
        )
        return BrowserParticipant(page, user_id, room_id)

    async def aclose(self) -> None:
        """Close every page and the browser."""
        for context in self._contexts:
            await context.close()
        if self._browser is not None:
            await self._browser.close()
        if self._playwright is not None:
            await self._playwright.stop()
