"""``tavkit loadtest``: hammer a server with simulated participants and report what it saw.

A live display (joined, connected, errors, signals, messages, phase) is drawn on
stderr unless ``--json``, which prints the report as one JSON object on stdout
instead of the text summary. Against a load balancer the report adds the enters
and sockets per replica and splits signal and message latency into same-replica and
cross-replica pairs (from the ``X-Tavkit-Replica`` header).

Exit status: 0 no error, consistent membership and every message delivered; 1
otherwise (a server restart in the middle exits 1 even when everyone recovered:
``"recovered": true`` says so); 2 a usage mistake.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import sys
from dataclasses import replace
from typing import TYPE_CHECKING, Annotated

import typer

if TYPE_CHECKING:
    from rich.console import RenderableType

    from tavkit.loadtest.report import Recorder

__all__ = ["loadtest"]


def loadtest(
    server: Annotated[
        str,
        typer.Option(
            "--server",
            envvar="TAVKIT_SERVER",
            help="The tavkit server's URL, or the load balancer's in front of replicas.",
        ),
    ],
    app: Annotated[
        str,
        typer.Option("--app", envvar="TAVKIT_LOADTEST_APP", help="ID:KEY to mint userSigs with."),
    ],
    participants: Annotated[int, typer.Option("--participants", min=1, help="How many.")] = 10,
    rooms: Annotated[int, typer.Option("--rooms", min=1, help="Spread over this many rooms.")] = 2,
    ramp: Annotated[
        float, typer.Option("--ramp", min=0.001, help="Participants started per second.")
    ] = 50.0,
    duration: Annotated[
        float, typer.Option("--duration", min=0, help="Seconds of traffic once all are in.")
    ] = 10.0,
    media: Annotated[
        str,
        typer.Option("--media", help="none, or python: two real TAvKit clients in the first room."),
    ] = "none",
    messages: Annotated[
        int, typer.Option("--messages", min=0, help="Chat messages per participant.")
    ] = 3,
    signal_interval: Annotated[
        float, typer.Option("--signal-interval", min=0, help="Seconds between signals (0: none).")
    ] = 1.0,
    heartbeat_interval: Annotated[
        float | None,
        typer.Option("--heartbeat-interval", help="Seconds between pings (default: the server's)."),
    ] = None,
    admin_user: Annotated[
        str, typer.Option("--admin-user", help="Admin userId for the consistency check.")
    ] = "administrator",
    admin_key: Annotated[
        str | None,
        typer.Option(
            "--admin-key",
            envvar="TAVKIT_ADMIN_KEY",
            help="The server's admin key, for the consistency check (default: ask each room).",
            show_default=False,
        ),
    ] = None,
    room_base: Annotated[
        int | None, typer.Option("--room-base", min=1, help="First roomId (default: from --run).")
    ] = None,
    run: Annotated[
        str | None, typer.Option("--run", help="Tag in userIds (default random).")
    ] = None,
    recovery_timeout: Annotated[
        float, typer.Option("--recovery-timeout", min=0, help="Seconds to get back after a drop.")
    ] = 30.0,
    json_output: Annotated[
        bool, typer.Option("--json", help="Print the report as one JSON object on stdout.")
    ] = False,
) -> None:
    """Simulate many participants against a server: latencies, errors, consistency."""
    from tavkit.loadtest.config import LoadConfig, parse_app
    from tavkit.loadtest.runner import LoadTest

    try:
        sdk_app_id, key = parse_app(app)
        if media not in ("none", "python"):
            raise ValueError("--media must be none or python")
        config = LoadConfig(
            server=server,
            sdk_app_id=sdk_app_id,
            key=key,
            participants=participants,
            rooms=rooms,
            ramp=ramp,
            duration=duration,
            signal_interval=signal_interval,
            messages=messages,
            heartbeat_interval=heartbeat_interval,
            recovery_timeout=recovery_timeout,
            room_base=room_base,
            admin_user=admin_user,
            admin_key=admin_key,
            media="python" if media == "python" else "none",
        )
        if run:
            config = replace(config, run=run)
    except ValueError as exc:
        typer.echo(f"tavkit loadtest: {exc}", err=True)
        raise typer.Exit(2) from None

    from rich.console import Console
    from rich.live import Live

    console = Console(stderr=True)
    show = not json_output and console.is_terminal
    live = Live(console=console, transient=True, auto_refresh=False)
    if show:

        def draw(rec: Recorder) -> None:
            live.update(_status(rec, participants), refresh=True)

        config = replace(config, on_progress=draw)
    with live if show else contextlib.nullcontext():
        report = asyncio.run(LoadTest(config).run())
    if json_output:
        sys.stdout.write(json.dumps(report.to_dict()) + "\n")
        sys.stdout.flush()
    else:
        typer.echo(report.render())
    raise typer.Exit(0 if report.ok else 1)


def _status(rec: Recorder, target: int) -> RenderableType:
    """The live display: one table row of counters."""
    from rich.table import Table

    table = Table(box=None, pad_edge=False)
    for name in ("phase", "joined", "sockets", "errors", "drops", "signals", "messages"):
        table.add_column(name, justify="right")
    errors = sum(rec.errors.values())
    table.add_row(
        rec.phase,
        f"{rec.joined}/{target}",
        str(rec.connected),
        f"[red]{errors}[/red]" if errors else "0",
        str(rec.drops),
        f"{rec.signals_received}/{rec.signals_sent}",
        f"{rec.messages_received}/{rec.messages_expected} ({rec.messages_sent} sent)",
    )
    return table
