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

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from urllib.parse import quote

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
