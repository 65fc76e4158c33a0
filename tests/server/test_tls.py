"""HTTPS (``--tls-self-signed``, ``--tls-cert``) and the trusted proxies' ``X-Forwarded-*``.

The certificate tests run ``tavkit serve`` as a real process and speak TLS to it with
the made certificate as the only trust anchor, so a certificate that does not name
127.0.0.1 or does not match its key fails the handshake. The proxy tests use the
in-process server and send the headers a proxy would, from loopback.
"""

from __future__ import annotations

import ipaddress
import json
import signal
import ssl
import stat
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING

import httpx
import pytest
from cryptography import x509
from websockets.asyncio.client import connect

from tavkit.auth import gen_user_sig
from tavkit.server.proxies import client_from_chain
from tavkit.server.settings import parse_networks
from tavkit.server.tls import SelfSigned

from .test_cli import tavkit, wait_for_url

if TYPE_CHECKING:
    from conftest import ServerFactory

APP_ID = 1400000001
KEY = "k" * 32


@pytest.fixture
def tls_server(tmp_path: Path) -> Iterator[tuple[str, Path]]:
    """``tavkit serve --tls-self-signed --port 0``; yields (url, data dir)."""
    data = tmp_path / "data"
    process = start(data)
    try:
        yield wait_for_url(process), data
    finally:
        stop(process)


def start(data: Path, *options: str) -> subprocess.Popen[str]:
    """A self-signed HTTPS server on a free port (extra ``options`` appended)."""
    return tavkit(
        "serve",
        "--port",
        "0",
        "--data-dir",
        str(data),
        "--log-level",
        "warning",
        "--tls-self-signed",
        *options,
        env={"TAVKIT_APPS": f"{APP_ID}:{KEY}"},
    )


def stop(process: subprocess.Popen[str]) -> None:
    """SIGINT, then wait for it to end."""
    process.send_signal(signal.SIGINT)
    try:
        process.wait(timeout=30)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait(timeout=30)


def trusting(cert: Path) -> ssl.SSLContext:
    """A client context that trusts ``cert`` alone (and checks the host name)."""
    context = ssl.create_default_context(cafile=str(cert))
    assert context.check_hostname
    return context


def headers(user: str) -> dict[str, str]:
    """Credentials of ``user`` in the server's app."""
    return {
        "X-TAvKit-SdkAppId": str(APP_ID),
        "X-TAvKit-UserId": user,
        "X-TAvKit-UserSig": gen_user_sig(APP_ID, KEY, user, 86400),
    }


async def test_self_signed_serves_https_and_wss_with_a_certificate_for_this_host(tls_server):
    """The printed URL is https; the made certificate verifies for 127.0.0.1; enter hands
    out a wss:// socket URL and the socket opens over TLS; the key file is 0600."""
    url, data = tls_server
    assert url.startswith("https://127.0.0.1:")
    made = SelfSigned(data)
    context = trusting(made.cert)
    async with httpx.AsyncClient(base_url=url, timeout=30, verify=context) as http:
        assert (await http.get("/healthz")).status_code == 200
        entered = await http.post("/v1/rooms/5/enter", headers=headers("alice"))
        assert entered.status_code == 200, entered.text
        body = entered.json()
    assert body["socketUrl"].startswith("wss://127.0.0.1:")
    async with connect(
        body["socketUrl"],
        ssl=context,
        subprotocols=["tavkit.v1", f"tavkit.token.{body['socketToken']}"],  # type: ignore[list-item]
    ) as ws:
        welcome = json.loads(await ws.recv())
        assert welcome["type"] == "welcome", welcome
    assert stat.S_IMODE(made.key.stat().st_mode) == 0o600
    cert = x509.load_pem_x509_certificate(made.cert.read_bytes())
    names = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert ipaddress.ip_address("127.0.0.1") in names.get_values_for_type(x509.IPAddress)
    assert "localhost" in names.get_values_for_type(x509.DNSName)


async def test_plain_http_to_the_tls_port_gets_no_answer_in_clear(tls_server):
    """An http:// client reaching the HTTPS port gets no API answer in clear text."""
    url, _ = tls_server
    async with httpx.AsyncClient(timeout=10) as http:
        with pytest.raises(httpx.HTTPError):  # the TLS handshake never starts: dropped
            await http.get(url.replace("https://", "http://") + "/healthz")


def test_the_self_signed_certificate_is_kept_across_restarts(tmp_path: Path):
    """A second start reuses the certificate (phones that accepted it need not again)."""
    data = tmp_path / "data"
    first = start(data)
    try:
        wait_for_url(first)
    finally:
        stop(first)
    made = SelfSigned(data).cert.read_bytes()
    second = start(data)
    try:
        wait_for_url(second)
        assert SelfSigned(data).cert.read_bytes() == made
    finally:
        stop(second)


def test_a_given_certificate_and_key_are_served(tmp_path: Path):
    """``--tls-cert``/``--tls-key`` serve that certificate; one without the other is refused."""
    donor = tmp_path / "donor"
    first = start(donor)
    try:
        wait_for_url(first)
    finally:
        stop(first)
    made = SelfSigned(donor)
    data = tmp_path / "data"
    process = tavkit(
        "serve", "--port", "0", "--data-dir", str(data), "--log-level", "warning",
        "--tls-cert", str(made.cert), "--tls-key", str(made.key),
        env={"TAVKIT_APPS": f"{APP_ID}:{KEY}"},
    )  # fmt: skip
    try:
        url = wait_for_url(process)
        response = httpx.get(url + "/healthz", verify=trusting(made.cert), timeout=30)
        assert response.status_code == 200
        assert not SelfSigned(data).cert.exists()
    finally:
        stop(process)
    lonely = tavkit("serve", "--port", "0", "--data-dir", str(data), "--tls-cert", str(made.cert))
    output, _ = lonely.communicate(timeout=60)
    assert lonely.returncode == 2 and "tls_cert and tls_key go together" in output


# -- trusted proxies ----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("chain", "client"),
    [
        ("203.0.113.7", "203.0.113.7"),
        ("203.0.113.7, 10.0.0.2", "203.0.113.7"),  # 10.0.0.2 is a trusted inner proxy
        ("198.51.100.1, 203.0.113.7, 10.0.0.2", "203.0.113.7"),  # the client cannot forge
        ("10.0.0.3, 10.0.0.2", "10.0.0.3"),  # only trusted hops: the leftmost
        ("garbage, 203.0.113.7", "203.0.113.7"),
        ("203.0.113.7, garbage", None),
        ("[2001:db8::1]:4711", "2001:db8::1"),
        ("203.0.113.9:5000", "203.0.113.9"),
    ],
)
def test_the_client_is_the_first_untrusted_hop_from_the_right(chain: str, client: str | None):
    """X-Forwarded-For is read right to left past trusted proxies; garbage stops the walk."""
    assert client_from_chain(chain, parse_networks("10.0.0.0/8")) == client


async def test_forwarded_headers_count_only_from_trusted_proxies(
    sqlite_server_factory: ServerFactory,
):
    """From a trusted proxy, X-Forwarded-Proto makes the socket URL wss:// and
    X-Forwarded-For gives each client its own rate-limit bucket; from anyone else both
    headers are ignored (one bucket, ws://)."""
    forwarded = {"X-Forwarded-Proto": "https"}
    for trusted, scheme in ((True, "wss"), (False, "ws")):
        server = sqlite_server_factory(
            trusted_proxies=parse_networks("127.0.0.1/32") if trusted else (),
            address_rate=0.01,
            address_burst=5,
        )
        async with httpx.AsyncClient(base_url=server.url, timeout=30) as http:
            entered = await http.post(
                "/v1/rooms/1/enter", headers={**server.headers("alice"), **forwarded}
            )
            assert entered.json()["socketUrl"].startswith(f"{scheme}://"), entered.text
            statuses = []
            for n in range(8):
                entered = await http.post(
                    f"/v1/rooms/{n + 10}/enter",
                    headers={**server.headers(f"u{n}"), "X-Forwarded-For": f"203.0.113.{n}"},
                )
                statuses.append(entered.status_code)
            if trusted:
                assert set(statuses) == {200}, statuses
            else:
                assert 429 in statuses, statuses
        server.stop()


def test_demo_mode_is_refused_behind_a_trusted_proxy(tmp_path: Path):
    """``--demo`` with ``--trusted-proxies`` exits 2: the proxy would make minting public."""
    process = tavkit(
        "serve", "--demo", "--port", "0", "--data-dir", str(tmp_path / "data"),
        "--trusted-proxies", "127.0.0.1/32",
    )  # fmt: skip
    output, _ = process.communicate(timeout=60)
    assert process.returncode == 2 and "behind --trusted-proxies" in output, output
