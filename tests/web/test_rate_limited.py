"""The browser component's REST client and heartbeat against a real server's 429s.

Node loads ``web/api.js`` and ``web/heartbeat.js`` as the browser would (DOM-free ES
modules) and talks to a real tavkit server over its own ``fetch``, which the script
wraps only to note each request's path, status, time and ``Retry-After``.
"""

from __future__ import annotations

import itertools
import json
import shutil
import subprocess
from importlib.resources import files
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

if TYPE_CHECKING:
    from conftest import ServerFactory

WEB = Path(str(files("tavkit") / "web"))

_SCRIPT = """
const { ApiClient } = await import(process.argv[1]);
const { Heartbeat } = await import(process.argv[2]);
const { server, sdkAppId, userId, userSig, room, beatFor } = JSON.parse(process.argv[3]);
const seen = [];
const realFetch = globalThis.fetch;
globalThis.fetch = async (url, init) => {
  const response = await realFetch(url, { ...init, cache: undefined });
  const path = new URL(url).pathname;
  const retryAfter = response.headers.get("Retry-After");
  seen.push({ path, status: response.status, at: Date.now(), retryAfter });
  return response;
};
const api = new ApiClient({ server, sdkAppId, userId, userSig });
const entered = [];
for (let i = 0; i < 3; i += 1) entered.push((await api.enter(room)).roomId);
const beats = [];
const heartbeat = new Heartbeat({
  beat: async () => {
    const beat = { start: Date.now() };
    beats.push(beat);
    try {
      await api.heartbeat(room);
    } catch (err) {
      beat.retryAfter = err.retryAfter ?? null;
      beat.code = err.errorCode;
      throw err;
    } finally {
      beat.end = Date.now();
    }
  },
  onGone: () => {},
});
heartbeat.start(0.2);
await new Promise((resolve) => setTimeout(resolve, beatFor));
heartbeat.stop();
process.stdout.write(JSON.stringify({ entered, seen, beats }));
"""


def run_node(options: dict[str, Any]) -> dict[str, Any]:
    """Run the script with ``options``; its JSON report."""
    node = shutil.which("node")
    if node is None:
        pytest.fail("node is not installed: install Debian's nodejs package (make chromium does)")
    urls = [(WEB / name).as_uri() for name in ("api.js", "heartbeat.js")]
    run = subprocess.run(
        [node, "--input-type=module", "-e", _SCRIPT, *urls, json.dumps(options)],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert run.returncode == 0, run.stderr
    report: dict[str, Any] = json.loads(run.stdout)
    return report


def test_enter_waits_out_429s_and_the_heartbeat_skips_beats(
    sqlite_server_factory: ServerFactory,
):
    """Against an address bucket of 2 at once and 1 a second: the third enter is answered
    429 and asked again only after its Retry-After, then succeeds; the heartbeat, beating
    every 0.2 s, gets 429s and sends nothing until each one's Retry-After has passed, and
    never starts a beat while another is unanswered."""
    server = sqlite_server_factory(address_rate=1.0, address_burst=2.0)
    report = run_node(
        {
            "server": server.url,
            "sdkAppId": server.app_id,
            "userId": "gil",
            "userSig": server.sig("gil"),
            "room": 601,
            "beatFor": 3000,
        }
    )
    assert report["entered"] == [601, 601, 601]
    enters = [s for s in report["seen"] if s["path"].endswith("/enter")]
    assert [s["status"] for s in enters][:2] == [200, 200]
    assert any(s["status"] == 429 for s in enters), enters
    for before, after in itertools.pairwise(enters):
        if before["status"] == 429:
            assert after["at"] - before["at"] >= float(before["retryAfter"]) * 900

    beats = report["beats"]
    limited = [b for b in beats if b.get("code") == 10004]
    assert limited, beats
    for before, after in itertools.pairwise(beats):
        assert after["start"] >= before["end"]  # never two at once
        if before.get("retryAfter"):
            assert after["start"] - before["end"] >= before["retryAfter"] * 900, beats
