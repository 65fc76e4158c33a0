"""Find secrets in log lines: the helper behind every "no secret in any log" test.

A secret counts as leaked when a line holds it whole, percent-encoded, or any
:data:`WINDOW`-character stretch of it starting at a multiple of :data:`STRIDE` -- so a
copy that was truncated, wrapped or cut out of a URL is caught as soon as
``WINDOW + STRIDE - 1`` of its characters are there. Secrets shorter than the window
are looked for whole. Failure messages name the secret and the line, with every
secret in the line masked, so a failing test does not print what it protects.

Used by the Python tests (``tests/server/test_secrets.py``) and meant for the
browser's too: collect the lines (a server's stderr, ``caplog``, a page's console),
name the secrets, call :func:`assert_no_secrets`.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import quote

from conftest import APP_ID

__all__ = ["STRIDE", "WINDOW", "Leak", "assert_no_secrets", "find_leaks", "fragments"]

WINDOW = 24
"""Characters of a secret that make a leak on their own."""
STRIDE = 8
"""Offset between the windows looked for."""


@dataclass(frozen=True)
class Leak:
    """One line that holds (part of) one secret."""

    name: str
    line_number: int
    line: str
    """The line with every secret fragment masked as ``<name>``."""


def fragments(secret: str) -> set[str]:
    """What to look for: the secret, its percent-encoding, and its windows."""
    found = {secret, quote(secret, safe="")}
    if len(secret) > WINDOW:
        found.update(secret[i : i + WINDOW] for i in range(0, len(secret) - WINDOW + 1, STRIDE))
        found.add(secret[-WINDOW:])
    return {f for f in found if f}


def find_leaks(lines: Iterable[str], secrets: Mapping[str, str]) -> list[Leak]:
    """Every (line, secret) pair where the line holds a fragment of the secret."""
    wanted = {name: fragments(value) for name, value in secrets.items() if value}
    leaks = []
    for number, line in enumerate(lines, 1):
        for name, parts in wanted.items():
            if any(part in line for part in parts):
                leaks.append(Leak(name, number, _masked(line, wanted)))
    return leaks


def assert_no_secrets(lines: Iterable[str], secrets: Mapping[str, str], *, where: str) -> None:
    """Fail, naming each leak (masked), if any line of ``where`` holds a secret."""
    text = list(lines)
    assert text, f"no log lines from {where}: nothing was checked"
    leaks = find_leaks(text, secrets)
    shown = "\n".join(f"  {leak.name} on line {leak.line_number}: {leak.line}" for leak in leaks)
    assert not leaks, f"{len(leaks)} secret(s) in the logs of {where}:\n{shown}"


def _masked(line: str, wanted: Mapping[str, set[str]]) -> str:
    for name, parts in wanted.items():
        for part in sorted(parts, key=len, reverse=True):
            line = line.replace(part, f"<{name}>")
    return line[:400]


def _closed_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


class LoggedServer:
    """``tavkit serve`` in a subprocess, its stderr (the server's whole log) in a file."""

    def __init__(self, tmp_path: Path, level: str, fmt: str, env: dict[str, str]) -> None:
        self.log = tmp_path / "server.log"
        apps = tmp_path / "apps.json"
        apps.write_text(json.dumps([{"sdkAppId": APP_ID, "key": env.pop("APP_KEY")}]))
        self._err = self.log.open("w")
        self.process = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "tavkit",
                "serve",
                "--port",
                "0",
                "--data-dir",
                str(tmp_path / "data"),
                "--apps-file",
                str(apps),
                "--log-level",
                level,
                "--log-format",
                fmt,
                "--ice-servers",
                f"turn:127.0.0.1:{_closed_port()}?transport=tcp",
                "--close-grace",
                "0.2",
            ],
            stdout=subprocess.PIPE,
            stderr=self._err,
            text=True,
            env={**os.environ, "PYTHONUNBUFFERED": "1", **env},
        )
        assert self.process.stdout is not None
        line = self.process.stdout.readline()
        assert line.startswith("tavkit serving on "), (line, self.log.read_text()[-2000:])
        self.url = line.removeprefix("tavkit serving on ").strip()

    def stop(self) -> list[str]:
        """Stop the server; every line it logged."""
        self.process.terminate()
        self.process.communicate(timeout=30)
        self._err.close()
        return self.log.read_text().splitlines()
