"""The browser's copies of Python definitions are identical to them, entry by entry.

The web component cannot import Python, so ``web/errors.js``, ``web/protocol.js`` and
``web/privileges.js`` copy what it needs: the error table, the close codes, the
privilege bits, the frame limit, the userId pattern, and the transceiver direction a
member's privileges allow. Node loads those modules as the browser would (they are
DOM-free ES modules) and each copy is compared with its Python definition.
"""

from __future__ import annotations

import json
import shutil
import subprocess
from importlib.resources import files
from pathlib import Path
from typing import Any

import pytest

from tavkit.auth import Privilege
from tavkit.errors import ErrorModule, all_codes
from tavkit.protocol import (
    MAX_FRAME_BYTES,
    MEDIA_LAYERS,
    PUBLISH_ALL,
    ROOM_ID_MAX,
    STR_ROOM_ID_RE,
    USER_ID_RE,
    CloseCode,
)
from tavkit.protocol.sdp import allowed_direction

WEB = Path(str(files("tavkit") / "web"))

# Privilege maps to compare allowed_direction on: none, each bit alone, the audience
# (42), a presenter without receive bits (22), a listener (8), all, and every pair of
# one kind's send and receive bits with nothing else.
PRIVILEGES = sorted(
    {0, *(1 << bit for bit in range(8)), 42, 43, 22, 46, 85, 170, 255, 12, 48, 192, 0x1FF}
)
KINDS = ["audio", "video", "sub", "application"]

# What the browser side holds, gathered in one node run.
_DUMP = """
const errors = await import(process.argv[1]);
const protocol = await import(process.argv[2]);
const privileges = await import(process.argv[3]);
const [values, kinds] = JSON.parse(process.argv[4]);
const directions = [];
for (const value of values) {
  for (const kind of kinds) {
    for (const sending of [true, false]) {
      directions.push([value, kind, sending, privileges.allowedDirection(kind, value, sending)]);
    }
  }
}
process.stdout.write(JSON.stringify({
  directions,
  publishAll: privileges.PUBLISH_ALL,
  modules: errors.MODULES,
  table: errors.TABLE,
  close: protocol.CLOSE,
  privilege: protocol.PRIVILEGE,
  maxFrameBytes: protocol.MAX_FRAME_BYTES,
  userId: { source: protocol.USER_ID.source, flags: protocol.USER_ID.flags },
  strRoomId: { source: protocol.STR_ROOM_ID.source, flags: protocol.STR_ROOM_ID.flags },
  maxRoomId: protocol.MAX_ROOM_ID,
  mediaLayers: protocol.MEDIA_LAYERS,
}));
"""


@pytest.fixture(scope="module")
def web() -> dict[str, Any]:
    """The browser's copies, as node reads web/errors.js and web/protocol.js."""
    node = shutil.which("node")
    if node is None:
        pytest.fail(
            "node is not installed, so the browser's copies of the Python definitions "
            "cannot be checked: install Debian's nodejs package (make chromium does)"
        )
    urls = [(WEB / name).as_uri() for name in ("errors.js", "protocol.js", "privileges.js")]
    table = json.dumps([PRIVILEGES, KINDS])
    run = subprocess.run(
        [node, "--input-type=module", "-e", _DUMP, *urls, table],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert run.returncode == 0, f"node could not load the web modules:\n{run.stderr}"
    dump: dict[str, Any] = json.loads(run.stdout)
    return dump


def test_error_messages_are_pythons_in_english_and_chinese(web: dict[str, Any]) -> None:
    """Every (module, code) in web/errors.js has tavkit.errors' English and Chinese message."""
    python = {(c.module.value, str(int(c))): [c.en, c.zh] for c in all_codes()}
    browser = {
        (module, code): row for module, rows in web["table"].items() for code, row in rows.items()
    }
    assert browser, "web/errors.js has no entries"
    assert {key: python.get(key) for key in browser} == browser


def test_error_modules_are_pythons(web: dict[str, Any]) -> None:
    """web/errors.js knows exactly tavkit.errors' four modules, in the same order."""
    assert web["modules"] == [module.value for module in ErrorModule]
    assert list(web["table"]) == [module.value for module in ErrorModule]


def test_close_codes_are_tavkit_protocols(web: dict[str, Any]) -> None:
    """CLOSE in web/protocol.js names every tavkit.protocol.CloseCode with its number."""
    assert web["close"] == {code.name: code.value for code in CloseCode}


def test_privilege_bits_are_tavkit_auths(web: dict[str, Any]) -> None:
    """PRIVILEGE in web/protocol.js has every tavkit.auth.Privilege name (aliases too)."""
    assert web["privilege"] == {name: int(bit) for name, bit in Privilege.__members__.items()}


def test_frame_limit_and_user_id_pattern_are_the_contracts(web: dict[str, Any]) -> None:
    """The socket's frame limit and the userId pattern match tavkit.protocol's."""
    assert web["maxFrameBytes"] == MAX_FRAME_BYTES
    assert web["userId"] == {"source": f"^{USER_ID_RE.pattern}$", "flags": ""}


def test_room_rules_are_tavkit_protocols(web: dict[str, Any]) -> None:
    """STR_ROOM_ID and MAX_ROOM_ID in web/protocol.js are tavkit.protocol's rules."""
    assert web["strRoomId"] == {"source": f"^{STR_ROOM_ID_RE.pattern}$", "flags": ""}
    assert web["maxRoomId"] == ROOM_ID_MAX


def test_allowed_directions_are_tavkit_protocol_sdps(web: dict[str, Any]) -> None:
    """allowedDirection in web/privileges.js gives sdp.allowed_direction's answer for every case."""
    python = [
        [value, kind, sending, allowed_direction(kind, value, sending=sending)]
        for value in PRIVILEGES
        for kind in KINDS
        for sending in (True, False)
    ]
    assert web["directions"] == python
    assert {row[3] for row in python} == {"sendrecv", "sendonly", "recvonly", "inactive"}


def test_publish_all_is_tavkit_protocols(web: dict[str, Any]) -> None:
    """PUBLISH_ALL (a member object without ``publish``) is tavkit.protocol.PUBLISH_ALL."""
    assert web["publishAll"] == PUBLISH_ALL


def test_media_layers_are_tavkit_protocols(web: dict[str, Any]) -> None:
    """MEDIA_LAYERS (what ``media-layers`` may ask) is tavkit.protocol.MEDIA_LAYERS."""
    assert tuple(web["mediaLayers"]) == MEDIA_LAYERS
