"""Forwarding client logs to Elasticsearch or OpenSearch, without ever holding up a call.

Ingest hands documents to :meth:`Forwarder.submit`, which only appends to a
bounded in-memory buffer and returns; one background task (owned by the
forwarder, cancelled by :meth:`Forwarder.aclose`) sends them in batches through
the bulk API. The failure rules:

* the buffer holds ``max_buffer`` documents; past that the *oldest* are dropped
  and counted (``stats.dropped``): recent logs matter most while a call is bad;
* a failed request (refused connection, timeout, 5xx, 429) keeps the batch and
  waits with exponential backoff (with jitter, capped) before trying again;
* within a bulk answer, items with 429/5xx are retried, items the cluster refused
  for good (mapping errors: other 4xx) are dropped and counted (``stats.rejected``);
* every document carries an ``_id`` made once, at submit, and is sent with the
  ``create`` action, so a retried batch that had in fact arrived gives 409 for
  those items, which counts as delivered: no duplicates.

Two clients speak the bulk API: the official ``elasticsearch`` package
(``AsyncElasticsearch.bulk``, over httpx) for Elasticsearch, and plain httpx
NDJSON for OpenSearch, because the official client refuses to talk to anything
that does not announce itself as Elasticsearch (the ``X-Elastic-Product`` check).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import random
import uuid
from collections import deque
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from types import TracebackType
from typing import Any, Final, Literal, Protocol, Self
from urllib.parse import urlsplit, urlunsplit

import httpx

__all__ = [
    "BulkOutcome",
    "BulkSink",
    "ElasticsearchSink",
    "Forwarder",
    "ForwarderConfig",
    "ForwarderStats",
    "OpenSearchSink",
]

logger = logging.getLogger(__name__)

Document = Mapping[str, Any]
_DELIVERED: Final = frozenset({409})  # "create" of an _id that is already there


@dataclass(frozen=True)
class ForwarderConfig:
    """Where and how to forward; every default is documented on its field."""

    url: str = field(repr=False)
    """The cluster's base URL, ``http(s)://[user:password@]host:port``."""
    index: str = "tavkit-logs"
    """The index (or data stream) the documents go to."""
    flavor: Literal["elasticsearch", "opensearch"] = "elasticsearch"
    """Which client speaks to it (see the module docstring)."""
    api_key: str | None = field(default=None, repr=False)
    """An API key (``Authorization: ApiKey ...``); None uses the URL's user, if any."""

    # Batching
    batch_size: int = 500
    """Documents per bulk request."""
    flush_interval: float = 2.0
    """Seconds a partial batch waits for company before it is sent anyway."""

    # Limits
    max_buffer: int = 10_000
    """Documents held in memory; beyond this the oldest are dropped and counted."""

    # Timeouts and backoff
    request_timeout: float = 10.0
    """Seconds one bulk request may take."""
    backoff_initial: float = 0.5
    """Seconds before the first retry after a failure; doubled on each further one."""
    backoff_max: float = 30.0
    """The longest pause between two attempts."""
    close_timeout: float = 5.0
    """Seconds :meth:`Forwarder.aclose` spends on a last flush."""

    def __post_init__(self) -> None:
        parts = urlsplit(self.url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ValueError("the log forward URL must be http(s)://host[:port]")
        if self.flavor not in ("elasticsearch", "opensearch"):
            raise ValueError("flavor must be 'elasticsearch' or 'opensearch'")
        if self.batch_size < 1 or self.max_buffer < self.batch_size:
            raise ValueError("need batch_size >= 1 and max_buffer >= batch_size")
        for name in ("flush_interval", "request_timeout", "backoff_initial", "close_timeout"):
            if not getattr(self, name) > 0:
                raise ValueError(f"{name} must be positive")
        if self.backoff_max < self.backoff_initial:
            raise ValueError("backoff_max must be at least backoff_initial")

    @property
    def safe_url(self) -> str:
        """The URL without its password, for logs."""
        parts = urlsplit(self.url)
        netloc = parts.hostname or ""
        if parts.port:
            netloc = f"{netloc}:{parts.port}"
        return urlunsplit((parts.scheme, netloc, parts.path, "", ""))


@dataclass
class ForwarderStats:
    """What the forwarder did so far (read by ``/metrics``)."""

    sent: int = 0
    """Documents the cluster accepted."""
    dropped: int = 0
    """Documents dropped because the buffer was full."""
    rejected: int = 0
    """Documents the cluster refused for good."""
    failures: int = 0
    """Bulk requests that failed as a whole."""
    buffered: int = 0
    """Documents waiting (including a batch in flight)."""
    last_error: str | None = None


@dataclass(frozen=True)
class BulkOutcome:
    """A bulk request's answer: one HTTP status per document, or why there is none."""

    statuses: Sequence[int] | None
    error: str | None = None


class BulkSink(Protocol):
    """Something that can send one bulk request."""

    async def send(self, index: str, items: Sequence[tuple[str, Document]]) -> BulkOutcome:
        """Send ``items`` as ``(id, document)`` with the ``create`` action; never raise."""
        ...

    async def aclose(self) -> None:
        """Release connections."""
        ...


def _split_auth(config: ForwarderConfig) -> tuple[str, tuple[str, str] | None]:
    """The URL without user info, and that user info as basic-auth credentials."""
    parts = urlsplit(config.url)
    netloc = parts.hostname or ""
    if parts.port:
        netloc = f"{netloc}:{parts.port}"
    base = urlunsplit((parts.scheme, netloc, parts.path.rstrip("/"), "", ""))
    auth = (parts.username, parts.password or "") if parts.username else None
    return base, auth


def _statuses(body: Any) -> list[int] | None:
    items = body.get("items") if isinstance(body, dict) else None
    if not isinstance(items, list):
        return None
    out = []
    for item in items:
        result: Any = next(iter(item.values()), {}) if isinstance(item, dict) else {}
        status = result.get("status") if isinstance(result, dict) else None
        out.append(int(status) if isinstance(status, int) else 500)
    return out


class ElasticsearchSink:
    """Bulk requests through the official client (``AsyncElasticsearch.bulk``, httpx node)."""

    def __init__(self, config: ForwarderConfig) -> None:
        from elastic_transport import HttpxAsyncHttpNode
        from elasticsearch import AsyncElasticsearch

        base, auth = _split_auth(config)
        self._client = AsyncElasticsearch(
            hosts=[base],
            api_key=config.api_key,
            basic_auth=auth if config.api_key is None else None,
            request_timeout=config.request_timeout,
            max_retries=0,  # the forwarder owns retries and backoff
            retry_on_timeout=False,
            node_class=HttpxAsyncHttpNode,
        )

    async def send(self, index: str, items: Sequence[tuple[str, Document]]) -> BulkOutcome:
        """One ``_bulk`` request; the client's errors become a :class:`BulkOutcome`."""
        from elasticsearch import ApiError, TransportError

        operations: list[Mapping[str, Any]] = []
        for doc_id, doc in items:
            operations.append({"create": {"_index": index, "_id": doc_id}})
            operations.append(doc)
        try:
            response = await self._client.bulk(operations=operations)
        except ApiError as exc:
            return BulkOutcome(None, f"HTTP {exc.meta.status}: {exc.message}")
        except TransportError as exc:
            return BulkOutcome(None, f"{type(exc).__name__}: {exc.message}")
        statuses = _statuses(response.body)
        if statuses is None or len(statuses) != len(items):
            return BulkOutcome(None, "the bulk answer has no item per document")
        return BulkOutcome(statuses)

    async def aclose(self) -> None:
        """Close the client's connection pool."""
        await self._client.close()


class OpenSearchSink:
    """Bulk requests as NDJSON over httpx (OpenSearch speaks the same ``_bulk`` API)."""

    def __init__(self, config: ForwarderConfig) -> None:
        base, auth = _split_auth(config)
        headers = {"Content-Type": "application/x-ndjson"}
        if config.api_key:
            headers["Authorization"] = f"ApiKey {config.api_key}"
        self._client = httpx.AsyncClient(
            base_url=base,
            auth=auth,
            headers=headers,
            timeout=httpx.Timeout(config.request_timeout),
        )

    async def send(self, index: str, items: Sequence[tuple[str, Document]]) -> BulkOutcome:
        """One ``_bulk`` request; transport failures become a :class:`BulkOutcome`."""
        lines = []
        for doc_id, doc in items:
            lines.append(json.dumps({"create": {"_index": index, "_id": doc_id}}))
            lines.append(json.dumps(doc, separators=(",", ":")))
        payload = ("\n".join(lines) + "\n").encode()
        try:
            response = await self._client.post("/_bulk", content=payload)
        except httpx.HTTPError as exc:
            return BulkOutcome(None, f"{type(exc).__name__}: {exc}")
        if response.status_code >= 300:
            return BulkOutcome(None, f"HTTP {response.status_code}")
        try:
            statuses = _statuses(response.json())
        except ValueError:
            statuses = None
        if statuses is None or len(statuses) != len(items):
            return BulkOutcome(None, "the bulk answer has no item per document")
        return BulkOutcome(statuses)

    async def aclose(self) -> None:
        """Close the connection pool."""
        await self._client.aclose()


class Forwarder:
    """A bounded buffer of documents and the one task that ships them (see module doc)."""

    def __init__(
        self,
        config: ForwarderConfig,
        *,
        sink: BulkSink | None = None,
        rng: random.Random | None = None,
    ) -> None:
        self.config = config
        self.stats = ForwarderStats()
        if sink is None:
            sink = (
                ElasticsearchSink(config)
                if config.flavor == "elasticsearch"
                else OpenSearchSink(config)
            )
        self._sink = sink
        self._rng = rng or random.Random()
        self._buffer: deque[tuple[str, Document]] = deque()
        self._inflight = 0
        self._wake = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._closing = False
        self._failures_in_row = 0

    # -- producer side -------------------------------------------------------------------

    def submit(self, docs: Iterable[Document]) -> None:
        """Queue documents for sending; never blocks, never raises for a full buffer."""
        if self._closing:
            self.stats.dropped += sum(1 for _ in docs)
            return
        for doc in docs:
            self._buffer.append((uuid.uuid4().hex, doc))
        self._trim()
        if len(self._buffer) >= self.config.batch_size:
            self._wake.set()

    # -- lifetime ------------------------------------------------------------------------

    async def start(self) -> None:
        """Start the sending task."""
        if self._task is None:
            self._task = asyncio.create_task(self._run(), name="tavkit-log-forwarder")
            logger.info("forwarding client logs to %s", self.config.safe_url)

    async def aclose(self) -> None:
        """Stop the task, try one last flush within ``close_timeout``, close the client."""
        self._closing = True
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None
        try:
            async with asyncio.timeout(self.config.close_timeout):
                while self._buffer and await self.flush_once():
                    pass
        except TimeoutError:
            logger.warning(
                "log forwarder: gave up the last flush after %s s", self.config.close_timeout
            )
        if self._buffer:
            logger.warning("log forwarder: %d documents were not delivered", len(self._buffer))
        await self._sink.aclose()

    async def __aenter__(self) -> Self:
        await self.start()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.aclose()

    # -- sending ---------------------------------------------------------------------------

    async def flush_once(self) -> bool:
        """Send one batch; True if the cluster answered (even if some items were refused)."""
        if not self._buffer:
            return True
        batch = [
            self._buffer.popleft() for _ in range(min(self.config.batch_size, len(self._buffer)))
        ]
        self._inflight = len(batch)
        self._update_buffered()
        try:
            outcome = await self._sink.send(self.config.index, batch)
        finally:
            self._inflight = 0
        if outcome.statuses is None:
            self.stats.failures += 1
            self.stats.last_error = outcome.error
            self._requeue(batch)
            return False
        retry: list[tuple[str, Document]] = []
        for item, status in zip(batch, outcome.statuses, strict=True):
            if 200 <= status < 300 or status in _DELIVERED:
                self.stats.sent += 1
            elif status == 429 or status >= 500:
                retry.append(item)
            else:
                self.stats.rejected += 1
        self._requeue(retry)
        if retry and len(retry) == len(batch):
            self.stats.failures += 1
            self.stats.last_error = f"every item was refused for now (HTTP {outcome.statuses[0]})"
            return False
        return True

    async def _run(self) -> None:
        delay = 0.0
        while True:
            if delay:
                await asyncio.sleep(delay)
            else:
                with contextlib.suppress(TimeoutError):
                    async with asyncio.timeout(self.config.flush_interval):
                        await self._wake.wait()
            self._wake.clear()
            try:
                ok = await self.flush_once()
            except Exception:  # a sink bug must not end forwarding for good
                logger.exception("log forwarder: sending a batch failed")
                ok = False
            if ok:
                if self._failures_in_row:
                    logger.info("log forwarder: %s answers again", self.config.safe_url)
                self._failures_in_row = 0
                delay = 0.0
                if len(self._buffer) >= self.config.batch_size:
                    self._wake.set()
            else:
                self._failures_in_row += 1
                delay = self._backoff()
                if self._failures_in_row == 1:
                    logger.warning(
                        "log forwarder: %s failed (%s); retrying with backoff",
                        self.config.safe_url,
                        self.stats.last_error,
                    )

    def _backoff(self) -> float:
        """Exponential, capped, with jitter so replicas do not retry in step."""
        base = self.config.backoff_initial * 2.0 ** min(self._failures_in_row - 1, 30)
        return float(min(base, self.config.backoff_max) * self._rng.uniform(0.5, 1.0))

    def _requeue(self, items: Sequence[tuple[str, Document]]) -> None:
        self._buffer.extendleft(reversed(items))
        self._trim()

    def _trim(self) -> None:
        excess = len(self._buffer) + self._inflight - self.config.max_buffer
        for _ in range(max(0, min(excess, len(self._buffer)))):
            self._buffer.popleft()
            self.stats.dropped += 1
        self._update_buffered()

    def _update_buffered(self) -> None:
        self.stats.buffered = len(self._buffer) + self._inflight
