"""What every benchmark script shares: a real server to measure, p95, phase tables, RESULTS.md.

Each script owns one section of ``bench/RESULTS.md`` between its own HTML-comment
markers, so scripts can be re-run one at a time without clobbering the others.
"""

from __future__ import annotations

import asyncio
import statistics
import tempfile
import threading
import time
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import uvicorn
from websockets.typing import Subprotocol

from tavkit.server import AppConfig, Settings, create_app
from tavkit.server.cli import event_loop_factory, uvicorn_config
from tavkit.server.listen import listening_socket
from tavkit.server.signaling.tokens import SUBPROTOCOL, TOKEN_SUBPROTOCOL_PREFIX

RESULTS = Path(__file__).with_name("RESULTS.md")
_START_TIMEOUT = 60.0


@contextmanager
def tavkit_server(app_id: int, key: str, **settings: Any) -> Iterator[str]:
    """A real server on a free loopback port in a thread; yields its base URL."""
    with tempfile.TemporaryDirectory(prefix="tavkit-bench-") as data:
        config = Settings(
            host="127.0.0.1",
            port=0,
            data_dir=Path(data),
            apps=(AppConfig(app_id, key),),
            **settings,
        )
        sock = listening_socket("127.0.0.1", 0)
        port = sock.getsockname()[1]
        # As `tavkit serve` runs it: its uvicorn settings and its event loop (uvloop).
        # Until 8 Dec this server ran on asyncio's own loop with uvicorn's defaults.
        server = uvicorn.Server(uvicorn_config(create_app(config), "warning"))

        def run() -> None:
            with asyncio.Runner(loop_factory=event_loop_factory()) as runner:
                runner.run(server.serve(sockets=[sock]))

        thread = threading.Thread(target=run, daemon=True)
        thread.start()
        deadline = time.monotonic() + _START_TIMEOUT
        while not server.started:
            if time.monotonic() > deadline or not thread.is_alive():
                raise RuntimeError("the benchmark server did not start")
            time.sleep(0.05)
        try:
            yield f"http://127.0.0.1:{port}"
        finally:
            server.should_exit = True
            thread.join(30)


def socket_offer(token: str) -> list[Subprotocol]:
    """The subprotocols a client offers to open its signaling socket: the token rides in
    the handshake header, never in the URL (the server refuses ``?token=``)."""
    return [Subprotocol(SUBPROTOCOL), Subprotocol(TOKEN_SUBPROTOCOL_PREFIX + token)]


def p95(values: list[float]) -> float:
    """The 95th percentile by nearest rank (the runs are few, so no interpolation)."""
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(0.95 * (len(ordered) - 1)))]


def phase_table(
    labels: Sequence[str],
    rows: Sequence[tuple[Sequence[str], Mapping[str, Sequence[float]]]],
    phases: Sequence[str],
) -> list[str]:
    """A "where the time goes" table in Markdown: one row per ``(label cells, samples)``.

    ``samples`` maps a phase to its times (ms from the start) over the runs; each cell
    is their median, ``-`` where a row has none (a phase its implementation lacks).
    """
    lines = [
        "| " + " | ".join([*labels, *phases]) + " |",
        "| " + " | ".join(["---"] * len(labels) + ["---:"] * len(phases)) + " |",
    ]
    for cells, samples in rows:
        shown = [f"{statistics.median(samples[p]):.0f}" if samples.get(p) else "-" for p in phases]
        lines.append("| " + " | ".join([*cells, *shown]) + " |")
    return lines


def write_section(name: str, section: str) -> None:
    """Replace (or add) the section ``name`` of RESULTS.md, leaving the rest alone."""
    begin, end = f"<!-- {name} -->", f"<!-- /{name} -->"
    block = f"{begin}\n{section}{end}\n"
    text = RESULTS.read_text() if RESULTS.exists() else "# Benchmark results\n\n"
    if begin in text and end in text:
        head, rest = text.split(begin, 1)
        tail = rest.split(end, 1)[1].lstrip("\n")
        text = head + block + ("\n" + tail if tail else "")
    else:
        text = text.rstrip("\n") + "\n\n" + block
    RESULTS.write_text(text)
