"""The browser's copies of Python definitions are identical to them, entry by entry.

The web component cannot import Python, so ``web/errors.js`` and ``web/protocol.js``
copy what it needs: the error table, the close codes, the privilege bits, the frame
limit and the userId pattern. Node loads those modules as the browser would (they
are DOM-free ES modules) and each copy is compared with its Python definition.
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
from tavkit.protocol import MAX_FRAME_BYTES, CloseCode
from tavkit.protocol._fields import USER_ID_RE

WEB = Path(str(files("tavkit") / "web"))

# What the browser side holds, gathered in one node run.
_DUMP = """
const errors = await import(process.argv[1]);
const protocol = await import(process.argv[2]);
process.stdout.write(JSON.stringify({
  modules: errors.MODULES,
  table: errors.TABLE,
  close: protocol.CLOSE,
  privilege: protocol.PRIVILEGE,
  maxFrameBytes: protocol.MAX_FRAME_BYTES,
  userId: { source: protocol.USER_ID.source, flags: protocol.USER_ID.flags },
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
    urls = [(WEB / name).as_uri() for name in ("errors.js", "protocol.js")]
    run = subprocess.run(
        [node, "--input-type=module", "-e", _DUMP, *urls],
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
