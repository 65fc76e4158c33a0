"""The elk-component for the Python client: logs and quality samples to ``POST /v1/logs``.

The same rules as the browser's ``reporter.js``:

* it never slows or breaks the call: :meth:`Reporter.log` only appends to a queue,
  sampling and sending run in one background task the reporter owns, and every
  failure is swallowed and counted in :attr:`Reporter.stats`;
* the queue is bounded (``max_queue``); past it the oldest items are dropped and the
  count is sent with the next batch, so the server knows what it missed;
* a network failure, a 5xx or a 429 keeps the batch and backs off (1 s doubling to
  30 s, with jitter); any other refusal drops the batch, since resending it would
  get the same answer;
* :meth:`Reporter.stop` (hang-up) samples once more and flushes within a timeout.

A quality sample is aiortc's ``getStats()`` of one peer connection: RTT from
``remote-inbound-rtp``, jitter and inbound loss from ``inbound-rtp`` (loss as the
fraction lost since the previous sample), bitrates from the transport's byte
counters. aiortc reports neither frame rate nor resolution, so those are left out
rather than guessed; the ICE candidate type comes from the nominated pair of
aioice's connection, the only place aiortc keeps it.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import random
import re
import time
from collections import deque
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from types import TracebackType
from typing import Any, Final, Literal, Self

import httpx
from aiortc import RTCPeerConnection

from tavkit.client.api import Credentials, plain_http_transport
from tavkit.errors import ErrorModule, TAvKitError

__all__ = ["Reporter", "ReporterStats"]

logger = logging.getLogger(__name__)

Level = Literal["debug", "info", "warn", "error"]
PeerMap = Mapping[str, RTCPeerConnection | None]

_LEVELS: Final = frozenset({"debug", "info", "warn", "error"})
_EVENT_BAD: Final = re.compile(r"[^A-Za-z0-9_.:/-]+")
_CANDIDATE_TYPES: Final = frozenset({"host", "srflx", "prflx", "relay"})
_MAX_DATA_CHARS: Final = 1500
_ENVELOPE_BYTES: Final = 300
# RTP clock rates: aiortc reports jitter in timestamp units.
_CLOCK_RATE: Final = {"audio": 48000, "video": 90000}


@dataclass
class ReporterStats:
    """What the reporter did; failures are counted here instead of raised."""

    logged: int = 0
    sampled: int = 0
    sent: int = 0
    dropped: int = 0
    """Items dropped for a full queue, or left unsent at stop."""
    rejected: int = 0
    """Items in batches the server refused for good."""
    failed: int = 0
    """Failed operations (requests, getStats calls)."""


@dataclass
class _Counters:
    at: float
    bytes_in: int
    bytes_out: int
    lost: int
    received: int


class Reporter:
    """Batches one member's logs and quality samples to the server (see module doc).

    ``server`` is the base URL, ``credentials`` the member's, ``room_uuid`` the
    session from ``enter``; ``get_peers()`` returns userId → peer connection (None
    while a link has no connection). Timing is in seconds.
    """

    def __init__(
        self,
        server: str,
        credentials: Credentials,
        room_uuid: str,
        get_peers: Callable[[], PeerMap] = dict,
        *,
        # Timing
        sample_interval: float = 2.0,
        flush_interval: float = 5.0,
        timeout: float = 5.0,
        stats_timeout: float = 2.0,
        backoff_min: float = 1.0,
        backoff_max: float = 30.0,
        stop_timeout: float = 5.0,
        # Limits
        max_queue: int = 1000,
        max_batch: int = 200,
        max_batch_bytes: int = 48 * 1024,
        transport: httpx.AsyncBaseTransport | None = None,
    ) -> None:
        if max_queue < 1 or max_batch < 1:
            raise ValueError("max_queue and max_batch must be at least 1")
        self.room_uuid = room_uuid
        self.stats = ReporterStats()
        self._get_peers = get_peers
        self._sample_interval = sample_interval
        self._flush_interval = flush_interval
        self._stats_timeout = stats_timeout
        self._backoff_min = backoff_min
        self._backoff_max = backoff_max
        self._stop_timeout = stop_timeout
        self._max_queue = max_queue
        self._max_batch = max_batch
        self._max_batch_bytes = max_batch_bytes
        self._server = server.rstrip("/")
        self._headers = credentials.headers()
        self._timeout = timeout
        self._transport = transport
        # Made at the first send, not here: making a client costs tens of milliseconds of
        # CPU (api.plain_http_transport), and the reporter starts in the middle of a join.
        self._client: httpx.AsyncClient | None = None
        self._queue: deque[tuple[str, dict[str, Any]]] = deque()
        self._unreported = 0
        self._previous: dict[str, _Counters] = {}
        self._retry_at = 0.0
        self._backoff = 0.0
        self._flush_lock = asyncio.Lock()
        self._task: asyncio.Task[None] | None = None
        self._rng = random.Random()

    # -- producing -------------------------------------------------------------------

    def log(
        self,
        level: str,
        event: str,
        data: Mapping[str, Any] | None = None,
        *,
        error: TAvKitError | Mapping[str, Any] | None = None,
    ) -> None:
        """Queue a log line; ``error`` (an exception or a seed dict) becomes its error."""
        try:
            item: dict[str, Any] = {
                "at": time.time(),
                "level": level if level in _LEVELS else ("warn" if level == "warning" else "info"),
                "event": _EVENT_BAD.sub("-", event)[:64] or "event",
            }
            seed = _seed_error(error)
            if seed is not None:
                item["error"] = seed
            if data:
                text = json.dumps(dict(data), default=str)
                if len(text) > _MAX_DATA_CHARS:
                    text = json.dumps({"truncated": text[:_MAX_DATA_CHARS]})
                item["data"] = json.loads(text)
            self._push("logs", item)
            self.stats.logged += 1
        except (TypeError, ValueError):
            self.stats.failed += 1

    def set_credentials(self, credentials: Credentials) -> None:
        """Authenticate the batches sent from now on with ``credentials`` (after a ``renew``)."""
        self._headers = credentials.headers()
        if self._client is not None:
            self._client.headers = httpx.Headers(self._headers)

    # -- lifetime --------------------------------------------------------------------

    async def start(self) -> None:
        """Start the background task that samples and flushes."""
        if self._task is None:
            self._task = asyncio.create_task(self._run(), name="tavkit-reporter")

    async def stop(self) -> None:
        """Hang-up: stop the task, sample once more, flush within ``stop_timeout``, close."""
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None
        try:
            async with asyncio.timeout(self._stop_timeout):
                await self.sample()
                self._retry_at = 0.0  # a hang-up is worth one more try even in backoff
                await self.flush()
        except TimeoutError:
            self.stats.failed += 1
        self.stats.dropped += len(self._queue)
        self._queue.clear()
        if self._client is not None:
            await self._client.aclose()

    async def __aenter__(self) -> Self:
        await self.start()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.stop()

    async def _run(self) -> None:
        loop = asyncio.get_running_loop()
        next_flush = loop.time() + self._flush_interval
        while True:
            await asyncio.sleep(self._sample_interval)
            try:
                await self.sample()
                if loop.time() >= next_flush:
                    next_flush = loop.time() + self._flush_interval
                    await self.flush()
            except Exception:  # reporting must outlive any bug of its own
                logger.exception("reporter: a round failed")
                self.stats.failed += 1

    # -- sampling --------------------------------------------------------------------

    async def sample(self) -> int:
        """Sample every peer connection now; the number of samples queued."""
        try:
            peers = dict(self._get_peers())
        except Exception:  # a caller's callback must not end the reporter
            self.stats.failed += 1
            return 0
        count = 0
        for peer_id, pc in peers.items():
            if pc is None or pc.connectionState == "closed":
                continue
            try:
                async with asyncio.timeout(self._stats_timeout):
                    sample = await self._measure(peer_id, pc)
            except Exception:  # getStats of a closing connection can fail any way
                self.stats.failed += 1
                continue
            self._push("quality", sample)
            self.stats.sampled += 1
            count += 1
        return count

    async def _measure(self, peer_id: str, pc: RTCPeerConnection) -> dict[str, Any]:
        report = await pc.getStats()
        now = time.time()
        bytes_in = bytes_out = lost = received = 0
        jitter_ms: float | None = None
        rtt: float | None = None
        transports: set[str] = set()
        for stat in report.values():
            kind = getattr(stat, "type", "")
            if kind == "transport" and stat.id not in transports:
                transports.add(stat.id)
                bytes_in += int(stat.bytesReceived)
                bytes_out += int(stat.bytesSent)
            elif kind == "inbound-rtp":
                lost += max(0, int(stat.packetsLost))
                received += int(stat.packetsReceived)
                rate = _CLOCK_RATE.get(stat.kind, 90000)
                jitter_ms = max(jitter_ms or 0.0, float(stat.jitter) / rate * 1000)
            elif kind == "remote-inbound-rtp" and stat.roundTripTime is not None:
                rtt = max(rtt or 0.0, float(stat.roundTripTime))
        sample: dict[str, Any] = {"at": now, "peerId": peer_id}
        if rtt is not None:
            sample["rttMs"] = round(rtt * 1000, 1)
        if jitter_ms is not None:
            sample["jitterMs"] = round(jitter_ms, 1)
        previous = self._previous.get(peer_id)
        self._previous[peer_id] = _Counters(now, bytes_in, bytes_out, lost, received)
        if previous is not None and now > previous.at:
            elapsed = now - previous.at
            sample["bitrateInKbps"] = round(
                max(0, bytes_in - previous.bytes_in) * 8 / 1000 / elapsed, 1
            )
            sample["bitrateOutKbps"] = round(
                max(0, bytes_out - previous.bytes_out) * 8 / 1000 / elapsed, 1
            )
            new_lost = max(0, lost - previous.lost)
            new_received = max(0, received - previous.received)
            if new_lost + new_received:
                sample["packetLoss"] = round(new_lost / (new_lost + new_received), 4)
        candidate = _candidate_type(pc)
        if candidate is not None:
            sample["candidateType"] = candidate
        return sample

    # -- sending ---------------------------------------------------------------------

    async def flush(self) -> bool:
        """Send what is queued; True when the queue emptied. One flush at a time."""
        async with self._flush_lock:
            while self._queue:
                if time.monotonic() < self._retry_at:
                    return False
                batch = self._take()
                reported = self._unreported
                outcome = await self._post(batch)
                if outcome == "ok":
                    self.stats.sent += len(batch)
                    self._unreported = max(0, self._unreported - reported)
                    self._backoff = 0.0
                elif outcome == "retry":
                    self._queue.extendleft(reversed(batch))
                    self._trim()
                    self._backoff = min(
                        self._backoff_max, max(self._backoff_min, self._backoff * 2)
                    )
                    self._retry_at = time.monotonic() + self._backoff * self._rng.uniform(0.5, 1.0)
                    return False
                else:
                    self.stats.rejected += len(batch)
                    self._unreported += len(batch)
            return True

    def _http(self) -> httpx.AsyncClient:
        if self._client is None:
            self._client = httpx.AsyncClient(
                base_url=self._server,
                headers=self._headers,
                timeout=httpx.Timeout(self._timeout),
                transport=self._transport or plain_http_transport(self._server),
            )
        return self._client

    def _push(self, kind: str, item: dict[str, Any]) -> None:
        self._queue.append((kind, item))
        self._trim()

    def _trim(self) -> None:
        while len(self._queue) > self._max_queue:
            self._queue.popleft()
            self.stats.dropped += 1
            self._unreported += 1

    def _take(self) -> list[tuple[str, dict[str, Any]]]:
        batch: list[tuple[str, dict[str, Any]]] = []
        size = _ENVELOPE_BYTES
        while self._queue and len(batch) < self._max_batch:
            item_size = len(json.dumps(self._queue[0][1])) + 1
            if batch and size + item_size > self._max_batch_bytes:
                break
            batch.append(self._queue.popleft())
            size += item_size
        return batch

    async def _post(self, batch: list[tuple[str, dict[str, Any]]]) -> str:
        body = {
            "roomUuid": self.room_uuid,
            "sentAt": time.time(),
            "dropped": self._unreported,
            "logs": [item for kind, item in batch if kind == "logs"],
            "quality": [item for kind, item in batch if kind == "quality"],
        }
        try:
            response = await self._http().post("/v1/logs", json=body)
        except httpx.HTTPError as exc:
            logger.debug("log batch not sent: %r", exc)
            self.stats.failed += 1
            return "retry"
        if response.is_success:
            return "ok"
        self.stats.failed += 1
        logger.debug("log batch refused: HTTP %s %s", response.status_code, response.text[:200])
        return "retry" if response.status_code == 429 or response.status_code >= 500 else "refused"


def _seed_error(error: TAvKitError | Mapping[str, Any] | None) -> dict[str, Any] | None:
    if error is None:
        return None
    wire = error.to_dict() if isinstance(error, TAvKitError) else dict(error)
    module, code = wire.get("module"), wire.get("errorCode")
    if module not in {m.value for m in ErrorModule}:
        return None
    try:
        number = int(code)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        return None
    return {"module": module, "errorCode": number, "errorMsg": str(wire.get("errorMsg", ""))[:500]}


def _candidate_type(pc: RTCPeerConnection) -> str | None:
    """The local candidate type of a nominated ICE pair ("relay" if either end relays).

    aiortc has no candidate-pair stats; the nominated pair lives on aioice's
    ``Connection`` inside the ICE transport. Read defensively: if the internals
    move, the sample simply has no candidate type.
    """
    with contextlib.suppress(AttributeError, TypeError):
        for transceiver in pc.getTransceivers():
            ice = transceiver.receiver.transport.transport
            nominated = getattr(getattr(ice, "_connection", None), "_nominated", None) or {}
            for pair in nominated.values():
                local = pair.local_candidate.type
                remote = pair.remote_candidate.type
                kind = "relay" if "relay" in (local, remote) else local
                if kind in _CANDIDATE_TYPES:
                    return str(kind)
    return None
