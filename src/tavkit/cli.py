"""The ``tavkit`` command line: one Typer app, each concern's commands in its own module.

Each command group lives beside the code it drives (signatures in
:mod:`tavkit.auth.cli`, the server in :mod:`tavkit.server.cli`, ...) and is
attached here, so this module stays a table of contents.
"""

from __future__ import annotations

import typer

from tavkit import __version__
from tavkit.auth.cli import privatemapkey_app, sig_app, usersig_app
from tavkit.client.cli import call
from tavkit.loadtest.cli import loadtest
from tavkit.server.cli import server_app, turn_app
from tavkit.server.recording.cli import recordings_app

app = typer.Typer(
    name="tavkit",
    help="Self-hosted audio/video calls: server, signatures, client.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)


@app.command()
def version() -> None:
    """Print tavkit's version."""
    typer.echo(__version__)


# Command groups. Keep one line per group, in the order of `tavkit --help`.
app.add_typer(usersig_app, name="usersig")
app.add_typer(privatemapkey_app, name="privatemapkey")
app.add_typer(sig_app, name="sig")
app.add_typer(server_app)  # serve, db
app.add_typer(turn_app, name="turn")
app.command("call")(call)
app.command("loadtest")(loadtest)
app.add_typer(recordings_app, name="recordings")


def main() -> None:
    """Entry point of the ``tavkit`` console script and ``python -m tavkit``."""
    app()
