"""``tavkit janus config``: write the configuration of the Janus tavkit drives.

The API secret is the one thing tavkit and Janus must share. It comes from
``TAVKIT_JANUS_API_SECRET`` when set; otherwise the one already in ``DIR/api_secret``
is kept (running the command again must not cut tavkit off), else a new one is
generated. Either way it is written to ``DIR/api_secret`` (mode 0600) for tavkit to
read, and never printed: the terminal and its scrollback are not a secret store.
"""

from __future__ import annotations

import os
import secrets
from pathlib import Path
from typing import Annotated

import typer

__all__ = ["janus_app"]

janus_app = typer.Typer(
    help="Janus, the SFU that moves the media of SFU rooms.", no_args_is_help=True
)

_SECRET_FILE = "api_secret"


@janus_app.command("config")
def config(
    dir: Annotated[
        Path,
        typer.Option("--dir", help="The folder to write (created; `janus -F DIR` runs it)."),
    ],
    ws_host: Annotated[
        str, typer.Option(help="Address the Janus API listens on (only tavkit connects).")
    ] = "127.0.0.1",
    ws_port: Annotated[int, typer.Option(help="Port of the Janus API (WebSocket).")] = 8188,
    rtp_min_port: Annotated[int, typer.Option(help="Lowest media (RTP) port.")] = 20000,
    rtp_max_port: Annotated[int, typer.Option(help="Highest media (RTP) port.")] = 40000,
    ice_address: Annotated[
        list[str] | None,
        typer.Option(
            help="An interface or address to gather media candidates on (repeatable; "
            "default: every interface but loopback, which Janus never uses)."
        ),
    ] = None,
    public_ip: Annotated[
        list[str] | None,
        typer.Option(help="The public address of a 1:1 NAT in front of Janus (repeatable)."),
    ] = None,
    turn: Annotated[
        bool,
        typer.Option(
            "--turn/--no-turn",
            help="Janus itself relays through the first turn: URL of TAVKIT_ICE_SERVERS, "
            "with a credential minted from TAVKIT_TURN_SECRET (only for a Janus behind a "
            "restrictive firewall; clients get their TURN from tavkit either way).",
        ),
    ] = False,
    turn_days: Annotated[
        float,
        typer.Option(
            min=1, help="Days Janus's TURN credential lasts (write the folder again before)."
        ),
    ] = 30.0,
    library_dir: Annotated[
        Path | None,
        typer.Option(help="Janus's plugin folder (default: found, Debian's first)."),
    ] = None,
    debug_level: Annotated[
        int,
        typer.Option(
            min=0, max=4, help="Janus's log level (above 4 Janus logs its secrets: refused)."
        ),
    ] = 4,
) -> None:
    """Write a Janus configuration folder matching tavkit (VideoRoom, WebSocket API, secret).

    Only the VideoRoom plugin and the WebSocket transport load; the API needs the
    secret in DIR/api_secret (or TAVKIT_JANUS_API_SECRET); no admin API.
    """
    from tavkit.server.settings import Settings
    from tavkit.server.sfu.config import (
        JanusOptions,
        JanusTurn,
        find_janus_libraries,
        write_config_dir,
    )
    from tavkit.server.turn import turn_urls

    def fail(message: str) -> typer.Exit:
        typer.echo(f"tavkit janus config: {message}", err=True)
        return typer.Exit(2)

    libraries = library_dir or find_janus_libraries()
    if libraries is None:
        raise fail("Janus's plugins are not installed (apt-get install janus, or --library-dir)")
    secret_path = dir / _SECRET_FILE
    api_secret = os.environ.get("TAVKIT_JANUS_API_SECRET") or (
        secret_path.read_text().strip() if secret_path.is_file() else secrets.token_urlsafe(32)
    )
    try:
        janus_turn = None
        if turn:
            settings = Settings.from_env(os.environ)
            urls = [(host, port) for scheme, host, port in turn_urls(settings.ice_servers)]
            if not settings.turn_secret or not urls:
                raise ValueError(
                    "--turn needs TAVKIT_TURN_SECRET and a turn: URL in TAVKIT_ICE_SERVERS"
                )
            host, port = urls[0]
            janus_turn = JanusTurn.minted(settings.turn_secret, host, port or 3478, days=turn_days)
        options = JanusOptions(
            api_secret=api_secret,
            library_dir=libraries,
            ws_host=ws_host,
            ws_port=ws_port,
            rtp_min_port=rtp_min_port,
            rtp_max_port=rtp_max_port,
            ice_addresses=tuple(ice_address or ()),
            public_ips=tuple(public_ip or ()),
            turn=janus_turn,
            debug_level=debug_level,
        )
        write_config_dir(options, dir)
    except (ValueError, OSError) as exc:
        raise fail(str(exc)) from None
    fd = os.open(secret_path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as file:
        file.write(api_secret + "\n")
    typer.echo(f"wrote {dir}; start Janus with: janus -F {dir.resolve()}")
    host = f"[{ws_host}]" if ":" in ws_host else ws_host
    typer.echo(f"the Janus API: ws://{host}:{ws_port}, its secret in {secret_path}")
