"""Load testing a tavkit server: many simulated participants in one process.

``tavkit loadtest`` (:mod:`tavkit.loadtest.cli`) and :func:`run_loadtest` enter
``participants`` simulated members into ``rooms`` rooms, hold their signaling sockets
with heartbeats, exchange signals and chat messages, survive socket drops (resume,
or enter again), check that the server's member lists match what they hold, and
report latencies, errors by seed code and the consistency verdict::

    from tavkit.loadtest import LoadConfig, run_loadtest
    report = await run_loadtest(LoadConfig("http://127.0.0.1:8080", 1400000001, key,
                                           participants=200, rooms=40))
    assert report.ok, report.render()
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from tavkit.loadtest.config import LoadConfig, parse_app
    from tavkit.loadtest.report import Consistency, LatencySummary, LoadReport, Recorder
    from tavkit.loadtest.runner import LoadTest, run_loadtest

__all__ = [
    "Consistency",
    "LatencySummary",
    "LoadConfig",
    "LoadReport",
    "LoadTest",
    "Recorder",
    "parse_app",
    "run_loadtest",
]

# Imported on first use, so ``tavkit --help`` does not load httpx and websockets.
_HOME = {
    "Consistency": "report",
    "LatencySummary": "report",
    "LoadConfig": "config",
    "LoadReport": "report",
    "LoadTest": "runner",
    "Recorder": "report",
    "parse_app": "config",
    "run_loadtest": "runner",
}


def __getattr__(name: str) -> Any:
    module = _HOME.get(name)
    if module is None:
        raise AttributeError(f"module 'tavkit.loadtest' has no attribute {name!r}")
    return getattr(importlib.import_module(f"tavkit.loadtest.{module}"), name)


def __dir__() -> list[str]:
    return sorted(__all__)
