"""web/slides.js under node: it marks and reads a screen's m-line as tavkit.protocol.sdp does.

The browser adds ``a=content:slides`` to the descriptions it sends and reads it in
those it receives; the server and the Python client read and write the same mark with
:func:`~tavkit.protocol.sdp.mark_slides` and :func:`~tavkit.protocol.sdp.slides_mids`.
Both are run on the same descriptions here and must agree, byte for byte.
"""

from __future__ import annotations

import json
import shutil
import subprocess
from importlib.resources import files
from pathlib import Path

import pytest

from tavkit.protocol.sdp import mark_slides, media_sections, slides_mids

WEB = Path(str(files("tavkit") / "web"))

_RUN = """
const slides = await import(process.argv[1]);
const cases = JSON.parse(process.argv[2]);
process.stdout.write(JSON.stringify(cases.map(([sdp, mids]) => {
  const marked = slides.markSlides(sdp, new Set(mids));
  return [marked, [...slides.slidesMids(marked)].sort()];
})));
"""

# A camera and a screen (mid 2) as Chrome writes them, trimmed to what matters here.
CHROME = (
    "v=0\r\no=- 1 2 IN IP4 127.0.0.1\r\ns=-\r\nt=0 0\r\na=group:BUNDLE 0 1 2\r\n"
    "m=audio 9 UDP/TLS/RTP/SAVPF 111\r\nc=IN IP4 0.0.0.0\r\na=mid:0\r\na=sendrecv\r\n"
    "m=video 9 UDP/TLS/RTP/SAVPF 96\r\nc=IN IP4 0.0.0.0\r\na=mid:1\r\na=sendrecv\r\n"
    "m=video 9 UDP/TLS/RTP/SAVPF 96\r\nc=IN IP4 0.0.0.0\r\na=mid:2\r\na=sendonly\r\n"
)
CASES = [
    (CHROME, ["2"]),  # our screen
    (CHROME, []),  # no share: unchanged
    (CHROME, ["0", "2", "9"]),  # audio and unknown mids are never marked
    (CHROME.replace("a=mid:2\r\n", "a=mid:2\r\na=content:slides\r\n"), ["2"]),  # once only
    (CHROME.replace("\r\n", "\n"), ["1"]),  # LF-only stays LF-only
]


def test_slides_js_marks_and_reads_as_the_server_does() -> None:
    """markSlides/slidesMids give mark_slides/slides_mids' text and mids for each case."""
    node = shutil.which("node")
    if node is None:
        pytest.fail("node is not installed: install Debian's nodejs package (make chromium does)")
    run = subprocess.run(
        [node, "--input-type=module", "-e", _RUN, (WEB / "slides.js").as_uri(), json.dumps(CASES)],
        capture_output=True,
        text=True,
        check=True,
        timeout=30,
    )
    browser = json.loads(run.stdout)
    python = [
        [mark_slides(sdp, set(mids)), sorted(slides_mids(mark_slides(sdp, set(mids))))]
        for sdp, mids in CASES
    ]
    assert browser == python
    kinds = [s.kind for s in media_sections(browser[0][0])]
    assert kinds == ["audio", "video", "sub"]  # the server reads the browser's mark
