"""The log forwarder against a loopback bulk endpoint: delivery, outages, refusals, no dupes."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import AsyncIterator, Callable
from typing import Any

import httpx
import pytest
import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from tavkit.server.listen import listening_socket
from tavkit.server.logs.forwarder import Forwarder, ForwarderConfig
from tavkit.server.logs.routes import forwarder_config
from tavkit.server.settings import Settings

from ._util import eventually

INDEX = "tavkit-test"


class FakeCluster:
    """A real HTTP server on 127.0.0.1 speaking just enough of Elasticsearch for ``_bulk``.

    It checks every bulk payload the way the real thing would refuse it (NDJSON
    pairs, a ``create`` action naming the index and an ``_id``, a JSON object with
    ``@timestamp``), keeps the documents by ``_id`` (a second ``create`` of one is
    409), and can be told to refuse items (``item_status``) or whole requests
    (``fail_requests``). ``product=False`` leaves out ``X-Elastic-Product``, as
    OpenSearch does.
    """

    def __init__(self, *, product: bool = True) -> None:
        self.product = product
        self.docs: dict[str, dict[str, Any]] = {}
        self.requests: list[dict[str, Any]] = []
        self.item_status: Callable[[dict[str, Any]], int | None] = lambda doc: None
        self.fail_requests = 0
        self.fail_after_indexing = 0
        self.port = 0
        self._server: uvicorn.Server | None = None
        self._task: asyncio.Task[None] | None = None
        self.app = Starlette(
            routes=[Route("/", self._info), Route("/_bulk", self._bulk, methods=["POST", "PUT"])]
        )

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def _headers(self) -> dict[str, str]:
        return {"X-Elastic-Product": "Elasticsearch"} if self.product else {}

    async def _info(self, _request: Request) -> JSONResponse:
        body = {"name": "fake", "cluster_name": "loopback", "version": {"number": "9.0.0"}}
        return JSONResponse(body, headers=self._headers())

    async def _bulk(self, request: Request) -> JSONResponse:
        raw = (await request.body()).decode()
        self.requests.append({"content_type": request.headers.get("content-type", ""), "raw": raw})
        if self.fail_requests:
            self.fail_requests -= 1
            return JSONResponse({"error": "unavailable"}, status_code=503, headers=self._headers())
        lines = raw.split("\n")
        if lines[-1] != "" or (len(lines) - 1) % 2:
            return self._bad("bulk body must be action/document line pairs ending in a newline")
        items = []
        for action_line, doc_line in zip(lines[0:-1:2], lines[1:-1:2], strict=True):
            action, doc = json.loads(action_line), json.loads(doc_line)
            meta = action.get("create")
            if set(action) != {"create"} or meta.get("_index") != INDEX or not meta.get("_id"):
                return self._bad(f"bad action line {action_line}")
            if not isinstance(doc, dict) or "@timestamp" not in doc:
                return self._bad(f"bad document line {doc_line}")
            status = self.item_status(doc)
            if status is None:
                status = 409 if meta["_id"] in self.docs else 201
                self.docs.setdefault(meta["_id"], doc)
            items.append({"create": {"_index": INDEX, "_id": meta["_id"], "status": status}})
        if self.fail_after_indexing:
            self.fail_after_indexing -= 1
            return JSONResponse({"error": "timed out"}, status_code=504, headers=self._headers())
        errors = any(item["create"]["status"] >= 300 for item in items)
        return JSONResponse({"took": 1, "errors": errors, "items": items}, headers=self._headers())

    def _bad(self, reason: str) -> JSONResponse:
        return JSONResponse(
            {"error": {"type": "illegal_argument_exception", "reason": reason}, "status": 400},
            status_code=400,
            headers=self._headers(),
        )

    async def start(self) -> None:
        """Serve on ``self.port`` (a fresh one the first time, the same one after a stop)."""
        sock = listening_socket("127.0.0.1", self.port)
        self.port = sock.getsockname()[1]
        config = uvicorn.Config(self.app, log_level="warning", lifespan="off")
        self._server = uvicorn.Server(config)
        self._task = asyncio.create_task(self._server.serve(sockets=[sock]))
        await eventually(self._started, within=10)

    async def _started(self) -> bool:
        return self._server is not None and self._server.started

    async def stop(self) -> None:
        """Stop serving: connections to the port are refused until :meth:`start`."""
        if self._server is not None and self._task is not None:
            self._server.should_exit = True
            await asyncio.wait_for(self._task, 10)
        self._server = self._task = None

    def values(self, key: str) -> list[Any]:
        """``key`` of every stored document, in no particular order."""
        return [doc.get(key) for doc in self.docs.values()]


@pytest.fixture
async def cluster() -> AsyncIterator[FakeCluster]:
    """A loopback Elasticsearch stand-in."""
    fake = FakeCluster()
    await fake.start()
    try:
        yield fake
    finally:
        await fake.stop()


def config(url: str, **overrides: Any) -> ForwarderConfig:
    """Test settings: small batches and short waits."""
    values: dict[str, Any] = {
        "url": url,
        "index": INDEX,
        "batch_size": 10,
        "flush_interval": 0.05,
        "backoff_initial": 0.05,
        "backoff_max": 0.2,
        "request_timeout": 5.0,
        "close_timeout": 5.0,
    }
    values.update(overrides)
    return ForwarderConfig(**values)


def docs(start: int, count: int) -> list[dict[str, Any]]:
    """``count`` log documents numbered from ``start``."""
    return [
        {"@timestamp": "2024-12-02T10:00:00.000+00:00", "kind": "log", "seq": n}
        for n in range(start, start + count)
    ]


async def test_documents_reach_the_bulk_endpoint_in_batches(cluster):
    """Submitted documents arrive through the official client's bulk API, batch by batch."""
    async with Forwarder(config(cluster.url)) as forwarder:
        forwarder.submit(docs(0, 25))

        async def all_there() -> bool:
            return forwarder.stats.sent == 25

        await eventually(all_there)
        assert forwarder.stats.sent == 25 and forwarder.stats.buffered == 0
    assert sorted(cluster.values("seq")) == list(range(25))
    assert len(cluster.requests) >= 3  # batches of at most 10
    assert all("ndjson" in r["content_type"] for r in cluster.requests)


async def test_an_outage_is_survived_with_a_bounded_buffer(cluster):
    """While the cluster is down the newest documents wait (oldest dropped), then all arrive."""
    forwarder = Forwarder(config(cluster.url, max_buffer=20))
    async with forwarder:
        forwarder.submit(docs(0, 5))

        async def first_five() -> bool:
            return forwarder.stats.sent == 5

        await eventually(first_five)
        await cluster.stop()
        forwarder.submit(docs(5, 30))

        async def retrying() -> bool:
            return forwarder.stats.failures >= 2

        await eventually(retrying)
        assert forwarder.stats.dropped == 10
        assert forwarder.stats.buffered == 20
        assert forwarder.stats.last_error and "Connection" in forwarder.stats.last_error

        await cluster.start()

        async def resumed() -> bool:
            return forwarder.stats.sent == 25

        await eventually(resumed)
        # The oldest of the outage were dropped; the newest twenty arrived, once each.
        assert sorted(cluster.values("seq")) == [*range(5), *range(15, 35)]
        assert forwarder.stats.sent == 25 and forwarder.stats.buffered == 0


async def test_refused_items_are_dropped_and_busy_ones_retried(cluster):
    """A 400 item is dropped and counted; a 429 item is sent again until it is taken."""
    busy_left = {"count": 2}

    def status(doc: dict[str, Any]) -> int | None:
        if doc["seq"] == 3:
            return 400
        if doc["seq"] == 7 and busy_left["count"]:
            busy_left["count"] -= 1
            return 429
        return None

    cluster.item_status = status
    async with Forwarder(config(cluster.url)) as forwarder:
        forwarder.submit(docs(0, 10))

        async def settled() -> bool:
            return forwarder.stats.sent == 9

        await eventually(settled)
        assert forwarder.stats.rejected == 1
    assert sorted(cluster.values("seq")) == [n for n in range(10) if n != 3]


async def test_a_retried_batch_that_had_arrived_is_not_duplicated(cluster):
    """A batch indexed but answered with a failure is retried; the 409s count as delivered."""
    cluster.fail_after_indexing = 1
    async with Forwarder(config(cluster.url)) as forwarder:
        forwarder.submit(docs(0, 4))

        async def delivered() -> bool:
            return forwarder.stats.sent == 4

        await eventually(delivered)
        assert forwarder.stats.failures == 1
    assert len(cluster.requests) == 2 and len(cluster.docs) == 4


async def test_closing_flushes_what_is_left(cluster):
    """Documents still buffered when the forwarder closes are sent before it returns."""
    forwarder = Forwarder(config(cluster.url, flush_interval=60.0, batch_size=100))
    await forwarder.start()
    forwarder.submit(docs(0, 7))
    await forwarder.aclose()
    assert len(cluster.docs) == 7 and forwarder.stats.sent == 7


async def test_opensearch_flavor_speaks_plain_bulk():
    """A cluster without the Elasticsearch product header gets its bulk over plain NDJSON."""
    cluster = FakeCluster(product=False)
    await cluster.start()
    try:
        async with Forwarder(config(cluster.url, flavor="opensearch")) as forwarder:
            forwarder.submit(docs(0, 3))

            async def there() -> bool:
                return forwarder.stats.sent == 3

            await eventually(there)
            assert cluster.requests[0]["content_type"] == "application/x-ndjson"
        # The official client refuses such a cluster: that is why the flavor exists.
        async with Forwarder(config(cluster.url)) as refused:
            refused.submit(docs(10, 1))

            async def failing() -> bool:
                return refused.stats.failures >= 1

            await eventually(failing)
            assert "not Elasticsearch" in (refused.stats.last_error or "")
            assert refused.stats.sent == 0
    finally:
        await cluster.stop()


def test_config_is_checked_and_hides_the_password():
    """Bad URLs and limits are ValueErrors; the password never shows in repr or safe_url."""
    with pytest.raises(ValueError):
        ForwarderConfig(url="ftp://example")
    with pytest.raises(ValueError):
        ForwarderConfig(url="http://127.0.0.1:9200", batch_size=100, max_buffer=10)
    cfg = ForwarderConfig(url="http://elastic:hunter2@127.0.0.1:9200")
    assert "hunter2" not in repr(cfg) and "hunter2" not in cfg.safe_url
    assert cfg.safe_url == "http://127.0.0.1:9200"
    settings = Settings(log_forward_url="http://elastic:hunter2@127.0.0.1:9200")
    assert "hunter2" not in repr(settings)
    assert forwarder_config(settings) == ForwarderConfig(url=settings.log_forward_url or "")
    assert forwarder_config(Settings()) is None


async def test_the_server_forwards_ingested_reports(cluster, sqlite_server_factory):
    """With TAVKIT_LOG_FORWARD_URL set, each stored batch is shipped with its session and user."""
    server = sqlite_server_factory(log_forward_url=cluster.url, log_forward_index=INDEX)
    async with httpx.AsyncClient(base_url=server.url, timeout=30) as client:
        alice = server.headers("alice")
        room_uuid = (await client.post("/v1/rooms/901/enter", headers=alice)).json()["roomUuid"]
        now = time.time()
        body = {
            "roomUuid": room_uuid,
            "logs": [
                {"at": now, "level": "info", "event": "joined"},
                {
                    "at": now,
                    "level": "error",
                    "event": "error",
                    "error": {"module": "http", "errorCode": 10000, "errorMsg": "down"},
                },
            ],
            "quality": [{"at": now, "peerId": "bob", "rttMs": 42.0, "candidateType": "relay"}],
        }
        response = await client.post("/v1/logs", json=body, headers=alice)
        assert response.status_code == 200, response.text

        async def forwarded() -> bool:
            metrics = (await client.get("/metrics")).text
            return "tavkit_log_forward_sent_total 3.0" in metrics

        await eventually(forwarded)
    docs = sorted(cluster.docs.values(), key=lambda doc: (doc["kind"], doc.get("event", "")))
    common = {"session": room_uuid, "sdkAppId": server.app_id, "roomId": 901, "userId": "alice"}
    assert [{k: doc[k] for k in common} for doc in docs] == [common] * 3
    assert [doc["kind"] for doc in docs] == ["log", "log", "quality"]
    assert docs[0]["error"] == {"module": "http", "errorCode": 10000, "errorMsg": "down"}
    assert docs[2]["rttMs"] == 42.0 and docs[2]["candidateType"] == "relay"
    assert all(doc["@timestamp"].endswith("+00:00") for doc in docs)
