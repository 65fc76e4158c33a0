"""web/screens.js under node: each ending and error gets its own end screen, in both languages.

The module is DOM-free, so node runs it as the browser would. The real-browser tests
(``tests/browser/test_screens.py``) provoke the endings a browser can; the device
failures (busy, missing, no https) cannot be provoked in headless Chromium's fake
devices, so this is where their screens are proved.
"""

from __future__ import annotations

import json
import shutil
import subprocess
from importlib.resources import files
from pathlib import Path
from typing import Any

import pytest

WEB = Path(str(files("tavkit") / "web"))

_RUN = """
const screens = await import(process.argv[1]);
const { translator } = await import(process.argv[2]);
const cases = JSON.parse(process.argv[3]);
const out = [];
for (const [ending, opts] of cases) {
  const kind = screens.classify(ending);
  const row = { kind };
  for (const lang of ["en", "zh"]) {
    const t = translator(lang);
    const device = screens.deviceOf(ending.error);
    row[lang] = screens.screenFor(kind, t, { ...opts, device });
  }
  out.push(row);
}
process.stdout.write(JSON.stringify(out));
"""

ERR = "error"


def failed(module: str, code: int, msg: str = "", failure: str = "") -> dict[str, Any]:
    """A start that failed with (module, code): the ending the controller records."""
    error: dict[str, Any] = {"module": module, "errorCode": code, "errorMsg": msg}
    if failure:
        error["failure"] = failure
    return {"reason": "failed", ERR: error}


# (ending, options, the screen kind, its button)
CASES: list[tuple[dict[str, Any], dict[str, Any], str, str]] = [
    ({"reason": "hangup"}, {}, "hungUp", "rejoin"),
    ({"reason": "peerHungUp"}, {}, "peerHungUp", ""),
    ({"reason": "replaced"}, {}, "replaced", "rejoin"),
    ({"reason": "removed"}, {}, "removed", ""),
    ({"reason": "closed"}, {}, "closed", ""),
    ({"reason": "lost"}, {}, "lost", "rejoin"),
    ({"reason": "expired"}, {}, "expiredSig", ""),
    ({"reason": "expired"}, {"canRenew": True}, "expiredSig", "retry"),
    (failed("avkit", 70346, "userSig has expired"), {}, "expiredSig", ""),
    (failed("avkit", 70346, "userSig failed its HMAC"), {"canRenew": True}, "wrongSig", "retry"),
    (failed("avkit", 86), {}, "expiredSig", ""),
    (failed("avkit", 87), {}, "wrongSig", ""),
    (failed("avkit", 10004), {}, "badOptions", ""),
    (failed("server", 14000, "room 5 is full (2 members)"), {}, "roomFull", "retry"),
    (failed("http", 10000), {}, "network", "retry"),
    (failed("trtc", 10001), {}, "cameraDenied", "retry"),
    (failed("trtc", 10002), {}, "micDenied", "retry"),
    (failed("trtc", -1301, failure="busy"), {}, "deviceBusy", "retry"),
    (failed("trtc", -1302, failure="missing"), {}, "deviceMissing", "retry"),
    (failed("trtc", -1301, failure="insecure"), {}, "insecure", ""),
    (failed("server", 10006), {}, "failed", "retry"),
    ({"reason": "cameraDenied"}, {"phone": True}, "failed", "retry"),  # not a reason
    ({"reason": "declined"}, {}, "callDeclined", ""),
    ({"reason": "busy"}, {}, "callBusy", ""),
    ({"reason": "noAnswer"}, {}, "callNoAnswer", ""),
    ({"reason": "cancelled"}, {}, "callCancelled", ""),
]


def _run(cases: list[tuple[dict[str, Any], dict[str, Any]]]) -> list[dict[str, Any]]:
    node = shutil.which("node")
    if node is None:
        pytest.fail("node is not installed: install Debian's nodejs package (make chromium does)")
    run = subprocess.run(
        [
            node,
            "--input-type=module",
            "-e",
            _RUN,
            (WEB / "screens.js").as_uri(),
            (WEB / "i18n.js").as_uri(),
            json.dumps(cases),
        ],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert run.returncode == 0, run.stderr
    result: list[dict[str, Any]] = json.loads(run.stdout)
    return result


@pytest.fixture(scope="module")
def screens() -> list[dict[str, Any]]:
    """Each case's kind and its screen in English and Chinese."""
    return _run([(ending, opts) for ending, opts, _, _ in CASES])


def test_each_ending_has_its_own_kind_and_button(screens: list[dict[str, Any]]) -> None:
    """Every ending maps to its screen kind; Try again/Rejoin only where retrying can help."""
    got = [(row["kind"], row["en"]["action"]) for row in screens]
    assert got == [(kind, action) for _, _, kind, action in CASES]
    for row in screens:
        labels = {"retry": ("Try again", "重试"), "rejoin": ("Rejoin", "重新加入"), "": ("", "")}
        assert (row["en"]["actionLabel"], row["zh"]["actionLabel"]) == labels[row["en"]["action"]]


def test_every_screen_has_a_title_and_a_hint_translated(screens: list[dict[str, Any]]) -> None:
    """No screen shows a raw key or an English word in Chinese, and the two languages differ."""
    for row in screens:
        for lang in ("en", "zh"):
            screen = row[lang]
            for field in ("title", "hint"):
                text = screen[field]
                assert text and not text.endswith(("Title", "Hint")), (row["kind"], lang, text)
                assert "{" not in text
        assert row["en"]["title"] != row["zh"]["title"]
        assert not any("a" <= ch <= "z" for ch in row["zh"]["title"]), row["zh"]["title"]


def test_the_device_screens_name_the_device_and_the_phone_wording_differs() -> None:
    """A busy microphone says microphone; the permission hint on a phone never says address bar."""
    mic = failed("trtc", -1302, failure="busy")
    denied = failed("trtc", 10001)
    rows = _run([(mic, {}), (denied, {"phone": False}), (denied, {"phone": True})])
    assert rows[0]["en"]["title"] == "Your microphone is in use"
    assert rows[0]["zh"]["title"] == "麦克风正被占用"
    desktop, phone = rows[1], rows[2]
    assert "address bar" in desktop["en"]["hint"] and "地址栏" in desktop["zh"]["hint"]
    assert "address bar" not in phone["en"]["hint"] and "tap" in phone["en"]["hint"]
    assert "地址栏中的摄像头图标" not in phone["zh"]["hint"]


def test_a_rung_calls_ending_names_the_callee_or_says_they() -> None:
    """The caller reads who declined; without a name the screen says "They" / "对方"."""
    named, unnamed = _run(
        [({"reason": "declined"}, {"name": "Bob Chen"}), ({"reason": "noAnswer"}, {})]
    )
    assert (named["en"]["title"], named["zh"]["title"]) == (
        "Bob Chen declined the call",
        "Bob Chen拒绝了通话",
    )
    assert (unnamed["en"]["title"], unnamed["zh"]["title"]) == ("They did not answer", "对方无应答")
    assert named["en"]["ending"] and not named["en"]["action"]
