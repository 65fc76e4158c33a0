"""The ``tavkit`` command line: every command listed, each module imported only when used."""

from __future__ import annotations

import subprocess
import sys

import pytest
from typer.testing import CliRunner

from tavkit.cli import COMMANDS, app, load

HEAVY = (
    "aiortc",
    "av",
    "sqlalchemy",
    "fastapi",
    "uvicorn",
    "starlette",
    "numpy",
    "httpx",
    "pydantic",
    "markdown_it",
)
"""Packages a signature command has no use for (each costs tens of ms or more to import).

pydantic is what typer 0.29 validates every option with (~100 ms), markdown_it what
rich-formatted help pulls in (~40 ms): the CLI pins typer below 0.29 and prints plain help.
"""

_PROBE = """
import os, sys
os.environ["TAVKIT_KEY"] = "a-key"
HEAVY = {HEAVY}
sys.argv = ["tavkit", *sys.argv[1:]]
from tavkit.cli import main
try:
    main()
except SystemExit:
    pass
heavy = sorted({name.split(".")[0] for name in sys.modules} & HEAVY)
print("HEAVY:" + ",".join(heavy))
"""


def _imports_of(*args: str) -> tuple[str, list[str]]:
    """Run ``tavkit *args`` in a fresh interpreter: its output, and the heavy packages loaded."""
    code = _PROBE.replace("{HEAVY}", repr(set(HEAVY)))
    done = subprocess.run(
        [sys.executable, "-c", code, *args], capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 0, done.stderr
    out, _, tail = done.stdout.rpartition("HEAVY:")
    return out, [name for name in tail.strip().split(",") if name]


def test_help_lists_every_command_without_importing_them() -> None:
    """``tavkit --help`` shows each command with its help, and loads no server or client code."""
    out, heavy = _imports_of("--help")
    for name in ["version", *COMMANDS]:
        assert f" {name} " in out, name
    assert heavy == []


def test_a_signature_command_imports_no_server_client_or_media_package() -> None:
    """``tavkit usersig gen`` prints a userSig with only the signature code imported."""
    out, heavy = _imports_of("usersig", "gen", "--sdk-app-id", "1400000001", "--user-id", "alice")
    assert out.strip() and " " not in out.strip()
    assert heavy == []


@pytest.mark.parametrize("name", list(COMMANDS))
def test_each_listed_help_is_the_command_s_own(name: str) -> None:
    """The help line kept in the table is the first line of the real command's help, so
    the table cannot drift from the commands it stands for."""
    command = load(name)
    own = command.short_help or (command.help or "").strip().splitlines()[0]
    assert COMMANDS[name].help == own


@pytest.mark.parametrize("name", list(COMMANDS))
def test_each_command_s_help_runs_through_the_real_command(name: str) -> None:
    """``tavkit NAME --help`` reaches the real command (its options or subcommands show)."""
    result = CliRunner().invoke(app, [name, "--help"])
    assert result.exit_code == 0, result.output
    assert "Usage: tavkit " + name in " ".join(result.output.split())
    assert "--help" in result.output
