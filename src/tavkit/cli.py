"""The ``tavkit`` command line: one Typer app, each concern's commands in its own module.

Each command group lives beside the code it drives (signatures in
:mod:`tavkit.auth.cli`, the server in :mod:`tavkit.server.cli`, ...) and is listed
here, so this module stays a table of contents.

**Imported when used.** The server pulls in SQLAlchemy and FastAPI, the client and the
recorder aiortc and PyAV: most of a second before anything happens. A command needs
only its own module, so the table below names each command's module and short help,
and :class:`_LazyGroup` imports a module only when one of its commands runs (or its
own ``--help`` is asked for). ``tavkit --help`` and ``tavkit usersig gen`` import none
of the heavy packages (``tests/test_cli.py`` checks it, and that each short help here
is still its command's own first line). Help is Click's plain text
(``rich_markup_mode=None``): Rich's panels import a Markdown parser and cost ~80 ms of
the 150 ms a command may take; typer is pinned below 0.29, which validates every option
through pydantic (~100 ms more). Measured here: ``tavkit --help`` 0.07-0.10 s,
``tavkit usersig gen`` 0.09-0.12 s (both 0.15-0.30 s before).
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass
from typing import Any

import typer
import typer.core
import typer.main

from tavkit import __version__

__all__ = ["COMMANDS", "Command", "app", "load", "main"]


@dataclass(frozen=True)
class Command:
    """Where a top-level command lives, and its line in ``tavkit --help``.

    ``attribute`` is a Typer app (a group, or with ``merged`` an app whose commands
    sit at the top level under their own names) or a plain function (one command).
    """

    module: str
    attribute: str
    help: str
    merged: bool = False


# One line per command, in the order of `tavkit --help`.
COMMANDS: dict[str, Command] = {
    "usersig": Command(
        "tavkit.auth.cli", "usersig_app", "Mint and verify userSigs (who a user is)."
    ),
    "privatemapkey": Command(
        "tavkit.auth.cli",
        "privatemapkey_app",
        "Mint and verify privateMapKeys (which room, with which privileges).",
    ),
    "sig": Command(
        "tavkit.auth.cli", "sig_app", "Look inside a userSig or privateMapKey without its key."
    ),
    "serve": Command(
        "tavkit.server.cli",
        "server_app",
        "Run the room server (REST v1, signaling socket, web component).",
        merged=True,
    ),
    "cluster": Command(
        "tavkit.server.cli",
        "server_app",
        "Run REPLICAS demo replicas on PostgreSQL and Redis behind HAProxy, until Ctrl-C.",
        merged=True,
    ),
    "gc": Command(
        "tavkit.server.cli",
        "server_app",
        "Delete in-call messages, client logs, quality samples and recordings past the retention.",
        merged=True,
    ),
    "db": Command("tavkit.server.cli", "server_app", "Manage the server's database.", merged=True),
    "turn": Command(
        "tavkit.server.cli", "turn_app", "coturn, the TURN relay the clients are sent to."
    ),
    "janus": Command(
        "tavkit.server.sfu.cli", "janus_app", "Janus, the SFU that moves the media of SFU rooms."
    ),
    "rooms": Command(
        "tavkit.operator_cli",
        "rooms_app",
        "List the open rooms, their members; close a room, remove a member.",
    ),
    "sessions": Command(
        "tavkit.operator_cli",
        "sessions_app",
        "List past and open sessions (calls); show one, list and download its recordings.",
    ),
    "call": Command(
        "tavkit.client.cli",
        "call",
        "Join a room as a Python participant and exchange audio and video.",
    ),
    "listen": Command(
        "tavkit.client.cli",
        "listen",
        "Wait for calls to this user; accept one with --accept.",
    ),
    "loadtest": Command(
        "tavkit.loadtest.cli",
        "loadtest",
        "Simulate many participants against a server: latencies, errors, consistency.",
    ),
    "recordings": Command(
        "tavkit.server.recording.cli", "recordings_app", "Work with a session's recordings."
    ),
}


def _root() -> None:
    """Self-hosted audio/video calls: server, signatures, client.

    (A callback, so Typer makes a group even though ``version`` is its only own command.)
    """


def load(name: str) -> Any:
    """The Click command ``tavkit <name>`` runs, importing its module now.

    Built the way a Typer parent would attach it (``add_typer``, merged or named, or
    ``command``), so a one-command group such as ``turn`` stays a group.
    """
    where = COMMANDS[name]
    target = getattr(importlib.import_module(where.module), where.attribute)
    parent = typer.Typer(
        add_completion=False, pretty_exceptions_enable=False, rich_markup_mode=None
    )
    parent.callback()(_root)
    if isinstance(target, typer.Typer):
        parent.add_typer(target, name=None if where.merged else name)
    else:
        parent.command(name)(target)
    group = typer.main.get_command(parent)
    assert isinstance(group, typer.core.TyperGroup)
    return group.commands[name]


class _Deferred(typer.core.TyperCommand):
    """A command listed by name and help; its module is imported when it is used."""

    def __init__(self, name: str, short_help: str) -> None:
        super().__init__(name=name, short_help=short_help, help=short_help)

    def make_context(
        self, info_name: str | None, args: list[str], parent: Any = None, **extra: Any
    ) -> Any:
        """The real command's context: from here on Click runs the real command."""
        assert self.name is not None
        return load(self.name).make_context(info_name, args, parent=parent, **extra)


class _LazyGroup(typer.core.TyperGroup):
    """The top-level group: its own commands, then :data:`COMMANDS`, each imported on use."""

    def list_commands(self, ctx: Any) -> list[str]:
        """Every command, the group's own first."""
        return [*super().list_commands(ctx), *COMMANDS]

    def get_command(self, ctx: Any, cmd_name: str) -> Any:
        """The command ``cmd_name``, deferred if it lives in :data:`COMMANDS`."""
        own = super().get_command(ctx, cmd_name)
        if own is not None or cmd_name not in COMMANDS:
            return own
        return _Deferred(cmd_name, COMMANDS[cmd_name].help)


app = typer.Typer(
    name="tavkit",
    help="Self-hosted audio/video calls: server, signatures, client.",
    cls=_LazyGroup,
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    rich_markup_mode=None,
)


app.callback()(_root)


@app.command()
def version() -> None:
    """Print tavkit's version."""
    typer.echo(__version__)


def main() -> None:
    """Entry point of the ``tavkit`` console script and ``python -m tavkit``."""
    app()
