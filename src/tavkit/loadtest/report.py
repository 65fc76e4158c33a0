"""What a load test measured: live counters while it runs, and the final report.

:class:`Recorder` is the mutable side every simulated participant writes into (one
event loop, so no locks); :class:`LoadReport` is the frozen result that
:func:`~tavkit.loadtest.run_loadtest` returns, prints as text, or serialises as the
one JSON object of ``tavkit loadtest --json``::

    {"run", "server", "participants", "rooms", "elapsedSeconds", "joined",
     "latencyMs": {"join"|"heartbeat"|"signal"|"message": {"count", "p50", "p95", "p99", "max"}},
     "signals": {"sent", "received", "shed"},
     "messages": {"supported", "note", "sent", "acked", "received", "expected", "complete"},
     "errors": {"total", "byCode": {"server:10005": 3, "close:1012": 200, ...}, "samples": {...}},
     "reconnects": {"drops", "moved", "resumed", "reentered", "failed"}, "recovered",
     "consistency": {"passed", "source", "rooms", "mismatched": [...]}, "media": {...}|null,
     "replicas": {"enters": {name: n}, "sockets": {name: n}}, "ok"}

``latencyMs`` also has ``signalSameReplica``/``signalCrossReplica`` and
``messageSameReplica``/``messageCrossReplica``: the same samples split by whether the
two participants' sockets were on one replica or on two (``X-Tavkit-Replica``).

Errors are keyed ``module:errorCode`` with the seed's modules (REST answers and
``error`` frames), ``http:10000`` for network failures, and ``close:<code>`` for a
socket the server (or the network) closed when the participant did not ask it to;
``message:duplicate`` when one send (sender and ``clientMsgId``) arrived under two
``seq`` (resent into a new session after the old one ended unacknowledged); it is
counted as received once.

Deliveries are judged once everyone is back: the drain waits for participants still
reconnecting (each within its ``recovery_timeout``) and for their ``sync`` replies. A
message stored in a session a participant's membership then ended in (4002/4003, or
its session closed while the server was away) is not delivered in the next session
by design, and shows as missing next to those close codes.
"""

from __future__ import annotations

import math
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

__all__ = ["Consistency", "LatencySummary", "LoadReport", "Recorder", "percentile"]

_MAX_SAMPLE_CHARS = 200


def percentile(values: list[float], q: float) -> float:
    """The ``q`` quantile (0..1) with linear interpolation; NaN for no values."""
    if not values:
        return math.nan
    ordered = sorted(values)
    pos = q * (len(ordered) - 1)
    low = math.floor(pos)
    high = min(low + 1, len(ordered) - 1)
    return ordered[low] + (ordered[high] - ordered[low]) * (pos - low)


@dataclass(frozen=True)
class LatencySummary:
    """Count, p50, p95, p99 and max of one latency, in milliseconds."""

    count: int
    p50: float
    p95: float
    p99: float
    max: float

    @classmethod
    def of(cls, seconds: list[float]) -> LatencySummary:
        """Summarise samples given in seconds."""
        ms = [s * 1000.0 for s in seconds]
        return cls(
            count=len(ms),
            p50=percentile(ms, 0.50),
            p95=percentile(ms, 0.95),
            p99=percentile(ms, 0.99),
            max=max(ms) if ms else math.nan,
        )

    def to_dict(self) -> dict[str, Any]:
        """JSON shape; NaN (no samples) becomes null."""
        return {
            "count": self.count,
            **{
                name: None if math.isnan(v) else round(v, 3)
                for name, v in (("p50", self.p50), ("p95", self.p95), ("p99", self.p99))
            },
            "max": None if math.isnan(self.max) else round(self.max, 3),
        }


@dataclass(frozen=True)
class Consistency:
    """Members the server lists per room against members the tool holds there."""

    passed: bool
    source: str
    rooms: int
    mismatched: tuple[dict[str, Any], ...] = ()
    error: str | None = None

    def to_dict(self) -> dict[str, Any]:
        """JSON shape (at most ten mismatched rooms are listed)."""
        return {
            "passed": self.passed,
            "source": self.source,
            "rooms": self.rooms,
            "mismatched": list(self.mismatched[:10]),
            "mismatchedCount": len(self.mismatched),
            "error": self.error,
        }


@dataclass
class Recorder:
    """Live counters and samples of a running load test (written by the participants)."""

    joined: int = 0
    max_joined: int = 0
    connected: int = 0
    join: list[float] = field(default_factory=list)
    heartbeat: list[float] = field(default_factory=list)
    signal: list[float] = field(default_factory=list)
    message: list[float] = field(default_factory=list)
    signal_same: list[float] = field(default_factory=list)
    """Signal latencies between two sockets on one replica (``X-Tavkit-Replica``)."""
    signal_cross: list[float] = field(default_factory=list)
    """Signal latencies between sockets on two replicas (through the bus)."""
    message_same: list[float] = field(default_factory=list)
    message_cross: list[float] = field(default_factory=list)
    enter_replicas: Counter[str] = field(default_factory=Counter)
    """Successful enters per replica that answered them."""
    signals_sent: int = 0
    signals_received: int = 0
    signals_shed: int = 0
    """Refusals of a signal by a busy server (each refused signal is sent again)."""
    messages_sent: int = 0
    messages_acked: int = 0
    messages_received: int = 0
    messages_expected: int = 0
    messages_supported: bool | None = None
    drops: int = 0
    resumed: int = 0
    reentered: int = 0
    moved: int = 0
    """Drops that were a draining replica's close 1012 (also counted in ``drops``)."""
    failed: int = 0
    errors: Counter[str] = field(default_factory=Counter)
    samples: dict[str, str] = field(default_factory=dict)
    phase: str = "starting"

    def error(self, key: str, detail: str = "") -> None:
        """Count one error under ``key``; keep the first detail seen for each key."""
        self.errors[key] += 1
        if detail and key not in self.samples:
            self.samples[key] = detail[:_MAX_SAMPLE_CHARS]

    def seed_error(self, body: dict[str, Any], context: str) -> None:
        """Count a seed-shaped error (a REST body or an ``error`` frame)."""
        key = f"{body.get('module', '?')}:{body.get('errorCode', '?')}"
        self.error(key, f"{context}: {body.get('errorMsg', '')}")

    def set_joined(self, delta: int) -> None:
        """Track members currently in their room (entered, socket open or resuming)."""
        self.joined += delta
        self.max_joined = max(self.max_joined, self.joined)


@dataclass(frozen=True)
class LoadReport:
    """The result of one load test run; ``ok`` is what the exit code reports."""

    run: str
    server: str
    participants: int
    rooms: int
    duration: float
    elapsed: float
    joined: int
    latency: dict[str, LatencySummary]
    signals_sent: int
    signals_received: int
    signals_shed: int
    messages_supported: bool
    messages_note: str | None
    messages_sent: int
    messages_acked: int
    messages_received: int
    messages_expected: int
    errors: dict[str, int]
    error_samples: dict[str, str]
    drops: int
    resumed: int
    reentered: int
    failed: int
    consistency: Consistency
    media: dict[str, Any] | None = None
    moved: int = 0
    """Drops that were a draining replica telling the socket to move (close 1012)."""
    replicas: dict[str, dict[str, int]] = field(default_factory=dict)
    """``{"enters": {replica: n}, "sockets": {replica: n}}``: who answered the enters, and
    where the sockets were at the consistency check; empty when no replica was named."""

    @property
    def error_total(self) -> int:
        """Every error seen, whatever its code."""
        return sum(self.errors.values())

    @property
    def messages_complete(self) -> bool:
        """Every acknowledged message reached every other simulated member of its room."""
        return not self.messages_supported or self.messages_received >= self.messages_expected

    @property
    def recovered(self) -> bool:
        """Every participant whose socket dropped got back into its room."""
        return self.failed == 0 and self.consistency.passed

    @property
    def ok(self) -> bool:
        """No error, consistent membership, and every message delivered."""
        return self.error_total == 0 and self.consistency.passed and self.messages_complete

    def to_dict(self) -> dict[str, Any]:
        """The ``--json`` object."""
        return {
            "run": self.run,
            "server": self.server,
            "participants": self.participants,
            "rooms": self.rooms,
            "durationSeconds": self.duration,
            "elapsedSeconds": round(self.elapsed, 3),
            "joined": self.joined,
            "latencyMs": {name: s.to_dict() for name, s in self.latency.items()},
            "signals": {
                "sent": self.signals_sent,
                "received": self.signals_received,
                "shed": self.signals_shed,
            },
            "messages": {
                "supported": self.messages_supported,
                "note": self.messages_note,
                "sent": self.messages_sent,
                "acked": self.messages_acked,
                "received": self.messages_received,
                "expected": self.messages_expected,
                "complete": self.messages_complete,
            },
            "errors": {
                "total": self.error_total,
                "byCode": dict(sorted(self.errors.items())),
                "samples": dict(sorted(self.error_samples.items())),
            },
            "reconnects": {
                "drops": self.drops,
                "moved": self.moved,
                "resumed": self.resumed,
                "reentered": self.reentered,
                "failed": self.failed,
            },
            "recovered": self.recovered,
            "consistency": self.consistency.to_dict(),
            "media": self.media,
            "replicas": self.replicas,
            "ok": self.ok,
        }

    def render(self) -> str:
        """A plain-text summary for people (the CLI without ``--json``)."""

        def ms(value: float) -> str:
            return "-" if math.isnan(value) else f"{value:.1f}"

        lines = [
            f"tavkit loadtest {self.run} against {self.server}: {self.participants} participants "
            f"in {self.rooms} rooms, {self.elapsed:.1f} s",
            f"joined (max at once): {self.joined}",
            "",
            f"{'latency (ms)':<22}{'count':>8}{'p50':>9}{'p95':>9}{'p99':>9}{'max':>9}",
        ]
        names = {
            "join": "join (enter+welcome)",
            "heartbeat": "heartbeat RTT",
            "signal": "signal relay",
            "signalSameReplica": "  same replica",
            "signalCrossReplica": "  cross replica",
            "message": "message fan-out",
            "messageSameReplica": "  same replica",
            "messageCrossReplica": "  cross replica",
        }
        for key, label in names.items():
            s = self.latency.get(key)
            if s is None or (key.endswith("Replica") and not s.count):
                continue
            lines.append(
                f"{label:<22}{s.count:>8}{ms(s.p50):>9}{ms(s.p95):>9}{ms(s.p99):>9}{ms(s.max):>9}"
            )
        lines += [
            "",
            f"signals: {self.signals_sent} sent, {self.signals_received} received"
            + (f", {self.signals_shed} refusals by a busy server" if self.signals_shed else ""),
        ]
        if self.messages_supported:
            lines.append(
                f"messages: {self.messages_sent} sent, {self.messages_acked} acked, "
                f"{self.messages_received}/{self.messages_expected} deliveries received"
            )
        else:
            lines.append(f"messages: skipped ({self.messages_note})")
        lines.append(
            f"reconnects: {self.drops} drops ({self.moved} told to move), {self.resumed} resumed, "
            f"{self.reentered} re-entered, {self.failed} gave up (joining or getting back)"
        )
        lines.append(f"errors: {self.error_total}")
        for key, count in sorted(self.errors.items()):
            sample = self.error_samples.get(key, "")
            lines.append(f"  {key:<16}{count:>7}  {sample}")
        c = self.consistency
        verdict = "PASS" if c.passed else "FAIL"
        lines.append(
            f"consistency ({c.source}, {c.rooms} rooms): {verdict}"
            + (f", {len(c.mismatched)} rooms differ" if c.mismatched else "")
            + (f" ({c.error})" if c.error else "")
        )
        for room in c.mismatched[:5]:
            lines.append(f"  room {room['roomId']}: server {room['server']} tool {room['tool']}")
        if self.media is not None:
            lines.append(f"media: {self.media}")
        for what, counts in self.replicas.items():
            shown = ", ".join(f"{name} {n}" for name, n in sorted(counts.items()))
            lines.append(f"{what} per replica: {shown}")
        lines.append(f"recovered: {self.recovered}   result: {'OK' if self.ok else 'FAILED'}")
        return "\n".join(lines)
