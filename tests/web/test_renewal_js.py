"""web/renewal.js under node: how the page's onUserSigExpiredListener may answer.

The module is DOM-free, so node runs it as the browser would; the real-browser test
(``tests/browser/test_renewal.py``) covers the whole call. Each case gives a listener,
feeds one ``expiring`` frame and records the ``renew`` frames the module sends.
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
const { Renewal } = await import(process.argv[1]);
const listeners = {
  callback: (cb) => { setTimeout(() => cb("sig-callback"), 5); },
  returned: () => "sig-returned",
  promised: async () => "sig-promised",
  asyncCallback: async (cb) => { setTimeout(() => cb("sig-async-callback"), 5); },
  pair: () => ({ userSig: "sig-pair", privateMapKey: "pmk-new" }),
  nothing: () => null,
  throws: () => { throw new Error("page bug"); },
  absent: undefined,
};
const out = {};
const originalError = console.error;
console.error = () => {};
for (const [name, listener] of Object.entries(listeners)) {
  const sent = [];
  const renewal = new Renewal({
    listener: () => listener,
    current: () => ({ userSig: "sig-old", privateMapKey: "pmk-old" }),
    send: (frame) => { sent.push(frame); return true; },
    onRenewed: () => {},
    onRefused: () => {},
  });
  await renewal.expiring({ type: "expiring", expiresAt: 0, deadline: Date.now() / 1000 + 2 });
  out[name] = sent.map(({ type, userSig, privateMapKey }) => ({ type, userSig, privateMapKey }));
}
let asked = 0;
const shared = (cb) => { asked += 1; setTimeout(() => cb("sig-shared"), 20); };
const sockets = ["room", "user"].map((name) => {
  const sent = [];
  const renewal = new Renewal({
    listener: () => shared,
    current: () => ({ userSig: "sig-old", privateMapKey: name === "room" ? "pmk-old" : "" }),
    send: (frame) => { sent.push(frame); return true; },
    onRenewed: () => {},
    onRefused: () => {},
  });
  return { name, sent, renewal };
});
const warning = { type: "expiring", expiresAt: 0, deadline: Date.now() / 1000 + 2 };
await sockets[0].renewal.expiring(warning);
await sockets[1].renewal.expiring(warning);  // the user socket's warning, just after
out.together = { asked, sent: Object.fromEntries(sockets.map((s) => [s.name, s.sent.map(
  ({ type, userSig, privateMapKey }) => ({ type, userSig, privateMapKey }))])) };
console.error = originalError;
process.stdout.write(JSON.stringify(out));
"""


@pytest.fixture(scope="module")
def sent() -> dict[str, Any]:
    """listener case -> the renew frames sent for one ``expiring``."""
    node = shutil.which("node")
    if node is None:
        pytest.fail("node is not installed: install Debian's nodejs package (make chromium does)")
    run = subprocess.run(
        [node, "--input-type=module", "-e", _RUN, (WEB / "renewal.js").as_uri()],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert run.returncode == 0, run.stderr
    result: dict[str, Any] = json.loads(run.stdout)
    return result


@pytest.mark.parametrize(
    ("case", "sig"),
    [
        ("callback", "sig-callback"),
        ("returned", "sig-returned"),
        ("promised", "sig-promised"),
        ("asyncCallback", "sig-async-callback"),
    ],
)
def test_a_userSig_by_callback_or_return_is_sent_with_the_current_key(
    sent: dict[str, Any], case: str, sig: str
) -> None:
    """Calling back, returning or resolving a userSig sends one renew with the key in use."""
    assert sent[case] == [{"type": "renew", "userSig": sig, "privateMapKey": "pmk-old"}]


def test_a_pair_renews_the_key_too(sent: dict[str, Any]) -> None:
    """``{userSig, privateMapKey}`` sends both."""
    assert sent["pair"] == [{"type": "renew", "userSig": "sig-pair", "privateMapKey": "pmk-new"}]


@pytest.mark.parametrize("case", ["nothing", "throws", "absent"])
def test_no_answer_sends_nothing(sent: dict[str, Any], case: str) -> None:
    """null, a throwing listener or no listener at all let the credentials run out."""
    assert sent[case] == []


def test_two_sockets_warned_together_ask_the_page_once(sent: dict[str, Any]) -> None:
    """The room and user sockets (one userSig) both warn: the listener is asked once and
    each socket sends the answer with its own key."""
    together = sent["together"]
    assert together["asked"] == 1
    assert together["sent"] == {
        "room": [{"type": "renew", "userSig": "sig-shared", "privateMapKey": "pmk-old"}],
        "user": [{"type": "renew", "userSig": "sig-shared"}],
    }
