"""Response headers on a real server: security and replica headers everywhere, ``Allow``,
CORS, /metrics.

The paths and methods come from the server's own ``/openapi.json``, so a route added
later is held to the same rules without touching these tests.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import httpx
import pytest

from tavkit.errors import ServerCode
from tavkit.server import Settings

from ._util import expect_error

if TYPE_CHECKING:
    from conftest import RunningServer, ServerFactory

ORIGIN = "https://app.example.com"
TOKEN = "scrape-me-1234567890-abcdef"
SAMPLE_UUID = "00000000-0000-4000-8000-000000000000"


async def operations(http: httpx.AsyncClient) -> dict[str, set[str]]:
    """Every documented path (parameters filled with harmless values) and its methods."""
    spec: dict[str, Any] = (await http.get("/openapi.json")).json()
    out = {}
    for path, item in spec["paths"].items():
        concrete = (
            path.replace("{roomId}", "7")
            .replace("{uuid}", SAMPLE_UUID)
            .replace("{userId}", "bob")
            .replace("{id}", SAMPLE_UUID)
        )
        out[concrete] = {method.upper() for method in item}
    assert len(out) >= 15, out  # the whole API, not an empty spec
    return out


def assert_security_headers(response: httpx.Response) -> None:
    """The headers every answer carries, whatever it is."""
    where = f"{response.request.method} {response.request.url.path} -> {response.status_code}"
    headers = response.headers
    assert headers.get("x-content-type-options") == "nosniff", where
    assert headers.get("x-frame-options") == "DENY", where
    assert headers.get("referrer-policy") == "no-referrer", where
    assert "frame-ancestors 'none'" in headers.get("content-security-policy", ""), where
    if not headers.get("content-type", "").startswith("text/html"):
        assert "default-src 'none'" in headers["content-security-policy"], where
    assert headers.get("x-tavkit-replica"), where  # which replica answered, behind a balancer


async def test_every_kind_of_response_carries_the_security_headers(
    sqlite_server_factory: ServerFactory,
):
    """Every kind of answer carries the security headers; JSON and pages are not stored."""
    server = sqlite_server_factory(demo=True)
    async with httpx.AsyncClient(base_url=server.url, timeout=30) as http:
        alice = server.headers("alice")
        responses = [
            await http.post("/v1/rooms/8/enter", headers=alice),
            await http.get("/v1/rooms/8/users", headers=alice),
            await http.get("/v1/admin/rooms", headers=alice),  # 401
            await http.post("/v1/rooms/8/enter", content=b"[" * 1000, headers=alice),  # 400
            await http.get("/v1/nowhere"),  # 404
            await http.patch("/v1/rooms/8/enter"),  # 405
            await http.get("/healthz"),
            await http.get("/openapi.json"),
            await http.get("/docs"),
            await http.get("/dashboard"),
            await http.get("/"),  # the demo page
            await http.get("/tavkit/tavkit.js"),
            await http.get("/metrics"),
        ]
        for response in responses:
            assert_security_headers(response)
        by_path = {r.request.url.path: r for r in responses}
        for path in ("/v1/rooms/8/enter", "/v1/nowhere", "/dashboard", "/", "/openapi.json"):
            assert by_path[path].headers.get("cache-control") == "no-store", path
        # The component's files stay cacheable; the dashboard keeps its stricter policy.
        assert "no-store" not in by_path["/tavkit/tavkit.js"].headers.get("cache-control", "")
        csp = by_path["/dashboard"].headers["content-security-policy"]
        assert csp == "default-src 'self'; frame-ancestors 'none'"


async def test_a_wrong_method_names_every_method_of_the_path(sqlite_server: RunningServer):
    """A 405 on any documented path lists, in ``Allow``, exactly the methods the spec has."""
    async with httpx.AsyncClient(base_url=sqlite_server.url, timeout=30) as http:
        for path, methods in (await operations(http)).items():
            response = await http.request("PATCH", path)  # no route uses PATCH
            expect_error(response, ServerCode.BAD_REQUEST, status=405)
            allowed = {m.strip() for m in response.headers["allow"].split(",")}
            assert allowed == methods, path
            assert_security_headers(response)


async def test_cors_preflight_allows_every_method_the_api_uses(
    sqlite_server_factory: ServerFactory,
):
    """With an origin configured, the preflight of every documented (path, method) passes."""
    server = sqlite_server_factory(cors_origins=(ORIGIN,))
    async with httpx.AsyncClient(base_url=server.url, timeout=30) as http:
        for path, methods in (await operations(http)).items():
            for method in methods:
                preflight = await http.options(
                    path,
                    headers={
                        "Origin": ORIGIN,
                        "Access-Control-Request-Method": method,
                        "Access-Control-Request-Headers": "x-tavkit-usersig,content-type",
                    },
                )
                assert preflight.status_code == 200, (method, path, preflight.text)
                allowed = preflight.headers["access-control-allow-methods"]
                assert method in {m.strip() for m in allowed.split(",")}, (method, path)
                assert preflight.headers["access-control-allow-origin"] == ORIGIN
                assert_security_headers(preflight)


async def test_metrics_with_a_token_refuses_scrapes_without_it(
    sqlite_server_factory: ServerFactory,
):
    """With ``metrics_token`` set, a scrape without the right bearer token is 401 10005."""
    server = sqlite_server_factory(metrics_token=TOKEN)
    async with httpx.AsyncClient(base_url=server.url, timeout=30) as http:
        for authorization in (
            None,
            "Bearer wrong-token-1234567890",
            f"Basic {TOKEN}",
            f"Bearer {TOKEN}x",
            "Bearer",
            f"Bearer {TOKEN[:-1]}\u00e9",
        ):
            headers = {} if authorization is None else {"Authorization": authorization}
            raw = {name: value.encode("latin-1") for name, value in headers.items()}
            response = await http.get("/metrics", headers=raw)
            expect_error(response, ServerCode.UNAUTHORISED)
            assert response.headers["www-authenticate"].startswith("Bearer"), authorization
            assert "tavkit_" not in response.text


async def test_metrics_with_a_token_answers_the_right_bearer(sqlite_server_factory: ServerFactory):
    """The scrape that carries ``Authorization: Bearer <token>`` gets the series."""
    server = sqlite_server_factory(metrics_token=TOKEN)
    async with httpx.AsyncClient(base_url=server.url, timeout=30) as http:
        response = await http.get("/metrics", headers={"Authorization": f"bearer  {TOKEN}"})
    assert response.status_code == 200, response.text
    assert "tavkit_sessions_open" in response.text


def test_the_metrics_token_comes_from_the_environment_and_stays_hidden():
    """``TAVKIT_METRICS_TOKEN`` sets it, a short or spaced one is refused, repr hides it."""
    settings = Settings.from_env({"TAVKIT_METRICS_TOKEN": TOKEN})
    assert settings.metrics_token == TOKEN
    assert TOKEN not in repr(settings)
    for bad in ("short", "has a space in it 123456", "x" * 257):
        with pytest.raises(ValueError, match="metrics_token"):
            Settings.from_env({"TAVKIT_METRICS_TOKEN": bad})
    assert Settings.from_env({}).metrics_token is None
