"""``docs/deploy/nginx.conf`` in front of a real ``tavkit serve``, with TLS and a browser call.

The site file is the documented one, read from ``docs/``: only its placeholders are
replaced (the server name, the certificate paths, the upstream port, the listen ports,
the access log path) and its IPv6 ``listen`` lines dropped (a test host may have no
IPv6), so every other directive is tested as an operator would install it. A small
wrapper stands in for Debian's ``/etc/nginx/nginx.conf``: it includes the site inside
``http {}`` and keeps the pid file, logs and temporary files in the test's directory.

TLS uses a throwaway CA made with ``cryptography``. The Python clients trust that CA
alone; Chromium trusts the server's key through
``--ignore-certificate-errors-spki-list`` (no NSS database needed). tavkit runs the
command of ``docs/deploy/tavkit.service``'s ``ExecStart=`` (plain http on loopback,
``--trusted-proxies 127.0.0.1/32``) on a free port, with the browser tests' call
settings (loopback-only ICE) in its environment.
"""

from __future__ import annotations

import base64
import dataclasses
import datetime
import hashlib
import ipaddress
import json
import re
import shlex
import signal
import socket
import ssl
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from browser.conftest import CHROMIUM, FLAGS
from browser.pages import CALL_SERVER_SETTINGS, INSTRUMENT, CallPage
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID
from playwright.sync_api import sync_playwright
from server.test_cli import tavkit, wait_for_url
from websockets.asyncio.client import connect

from tavkit.auth import gen_user_sig
from tavkit.server import Settings
from tavkit.server.errors import MAX_BODY_BYTES

DEPLOY = Path(__file__).resolve().parents[2] / "docs" / "deploy"
SITE = DEPLOY / "nginx.conf"
UNIT = DEPLOY / "tavkit.service"
INSTALLED = "/opt/tavkit/bin/tavkit"
NGINX = "/usr/sbin/nginx"
APP_ID = 1400000001
KEY = "k" * 32
START_TIMEOUT = 30.0
STOP_TIMEOUT = 30.0


@dataclasses.dataclass
class Certificates:
    """A throwaway CA and a server certificate it signed for 127.0.0.1 and localhost."""

    directory: Path
    ca: Path
    spki_sha256: str
    """base64 SHA-256 of the server certificate's SubjectPublicKeyInfo (Chromium's pin)."""

    def client_context(self) -> ssl.SSLContext:
        """A client TLS context trusting the throwaway CA alone (host names checked)."""
        return ssl.create_default_context(cafile=str(self.ca))


@dataclasses.dataclass
class Site:
    """nginx running the documented site in front of tavkit."""

    url: str
    http_url: str
    upstream_url: str
    access_log: Path
    error_log: Path
    certificates: Certificates
    app_id: int = APP_ID

    def sig(self, user_id: str, *, expire: int = 86400) -> str:
        """A valid userSig for ``user_id`` in the server's app."""
        return gen_user_sig(APP_ID, KEY, user_id, expire)

    def headers(self, user_id: str) -> dict[str, str]:
        """Credential headers of ``user_id``."""
        return {
            "X-TAvKit-SdkAppId": str(APP_ID),
            "X-TAvKit-UserId": user_id,
            "X-TAvKit-UserSig": self.sig(user_id),
        }


def make_certificates(directory: Path) -> Certificates:
    """Write ``ca.pem``, ``fullchain.pem`` and ``privkey.pem`` into ``directory``."""
    directory.mkdir(parents=True)
    now = datetime.datetime.now(datetime.UTC)
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "tavkit test CA")])
    ca = (
        x509.CertificateBuilder()
        .subject_name(ca_name)
        .issuer_name(ca_name)
        .public_key(ca_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=False,
                content_commitment=False,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=False,
                key_cert_sign=True,
                crl_sign=True,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .add_extension(
            x509.SubjectKeyIdentifier.from_public_key(ca_key.public_key()), critical=False
        )
        .sign(ca_key, hashes.SHA256())
    )
    key = ec.generate_private_key(ec.SECP256R1())
    names = [x509.DNSName("localhost"), x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]
    cert = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "localhost")]))
        .issuer_name(ca_name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(x509.SubjectAlternativeName(names), critical=False)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()),
            critical=False,
        )
        .sign(ca_key, hashes.SHA256())
    )
    (directory / "ca.pem").write_bytes(ca.public_bytes(serialization.Encoding.PEM))
    (directory / "fullchain.pem").write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    (directory / "privkey.pem").write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    spki = key.public_key().public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    digest = base64.b64encode(hashlib.sha256(spki).digest()).decode()
    return Certificates(directory, directory / "ca.pem", digest)


def replace_placeholder(text: str, old: str, new: str) -> str:
    """``text`` with every ``old`` replaced; fails if the documented file has none."""
    assert old in text, f"docs/deploy/nginx.conf no longer contains {old!r}"
    return text.replace(old, new)


def site_config(
    *, upstream_port: int, http_port: int, https_port: int, certs: Path, access_log: Path
) -> str:
    """The documented site with its placeholders pointed at this test's ports and files."""
    text = SITE.read_text()
    text = replace_placeholder(text, "/etc/letsencrypt/live/tavkit.example.com/", f"{certs}/")
    text = replace_placeholder(text, "tavkit.example.com", "localhost")
    text = replace_placeholder(text, "server 127.0.0.1:8080;", f"server 127.0.0.1:{upstream_port};")
    text = replace_placeholder(text, "listen 80;", f"listen 127.0.0.1:{http_port};")
    text = replace_placeholder(
        text, "listen 443 ssl http2;", f"listen 127.0.0.1:{https_port} ssl http2;"
    )
    text = replace_placeholder(text, "/var/log/nginx/tavkit.access.log", str(access_log))
    without_v6, dropped = re.subn(r"(?m)^\s*listen \[::\]:\S+.*;\n", "", text)
    assert dropped == 2, "expected an IPv6 listen line in each server block"
    return without_v6


def wrapper_config(prefix: Path, site: Path) -> str:
    """A stand-in for Debian's nginx.conf: the site inside ``http {}``, state in ``prefix``.

    ``user root``: the workers must reach the temporary directories inside pytest's
    owner-only tmp dir (ignored with a warning when the test does not run as root).
    """
    temp = "\n".join(
        f"    {kind}_temp_path {prefix / kind};"
        for kind in ("client_body", "proxy", "fastcgi", "uwsgi", "scgi")
    )
    return f"""
user root;
pid {prefix / "nginx.pid"};
error_log {prefix / "error.log"} info;
events {{}}
http {{
    include /etc/nginx/mime.types;
    default_type application/octet-stream;
{temp}
    include {site};
}}
"""


def free_port() -> int:
    """A TCP port free on 127.0.0.1 right now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def wait_listening(process: subprocess.Popen[bytes], port: int, log: Path) -> None:
    """Wait until ``port`` accepts connections; fail with nginx's log if it exits first."""
    deadline = time.monotonic() + START_TIMEOUT
    while time.monotonic() < deadline:
        if process.poll() is not None:
            pytest.fail(f"nginx exited with {process.returncode}:\n{log.read_text()}")
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            return
        except OSError:
            time.sleep(0.1)
    pytest.fail(f"nginx did not listen within {START_TIMEOUT} s:\n{log.read_text()}")


def stop(process: subprocess.Popen[bytes] | subprocess.Popen[str], sig: int) -> None:
    """Send ``sig`` and wait for the process to end (killing it if it will not)."""
    if process.poll() is None:
        process.send_signal(sig)
    try:
        process.wait(timeout=STOP_TIMEOUT)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait(timeout=STOP_TIMEOUT)


def unit_arguments() -> list[str]:
    """The arguments ``ExecStart=`` of the documented unit gives ``tavkit``."""
    lines = re.findall(r"(?m)^ExecStart=(.*)$", UNIT.read_text())
    assert len(lines) == 1, lines
    command = shlex.split(lines[0])
    assert command[0] == INSTALLED, command
    return command[1:]


def option(arguments: list[str], name: str) -> str:
    """The value following ``name`` in ``arguments``."""
    assert arguments.count(name) == 1, (name, arguments)
    return arguments[arguments.index(name) + 1]


def server_environment() -> dict[str, str]:
    """The browser tests' call settings (loopback-only ICE) as ``TAVKIT_*`` variables."""
    env = {"TAVKIT_APPS": f"{APP_ID}:{KEY}"}
    for name, value in CALL_SERVER_SETTINGS.items():
        text = ",".join(map(str, value)) if isinstance(value, tuple) else str(value)
        env[f"TAVKIT_{name.upper()}"] = text
    return env


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Site]:
    """``tavkit serve`` on loopback http, and nginx running the documented site before it."""
    if not Path(NGINX).is_file():
        pytest.fail(f"{NGINX} is missing: `make test` installs Debian's nginx")
    root = tmp_path_factory.mktemp("nginx")
    certificates = make_certificates(root / "certs")
    # The unit's command, on a free port and with this test's data directory.
    arguments = unit_arguments()
    arguments[arguments.index("--port") + 1] = "0"
    arguments += ["--data-dir", str(root / "data"), "--log-level", "warning"]
    server = tavkit(*arguments, env=server_environment())
    try:
        upstream = wait_for_url(server)
        http_port, https_port = free_port(), free_port()
        access_log = root / "access.log"
        site_file = root / "tavkit.conf"
        site_file.write_text(
            site_config(
                upstream_port=int(upstream.rsplit(":", 1)[1]),
                http_port=http_port,
                https_port=https_port,
                certs=certificates.directory,
                access_log=access_log,
            )
        )
        wrapper = root / "nginx.conf"
        wrapper.write_text(wrapper_config(root, site_file))
        error_log = root / "error.log"
        command = [NGINX, "-p", str(root), "-e", str(error_log), "-c", str(wrapper)]
        nginx = subprocess.Popen([*command, "-g", "daemon off;"], stdin=subprocess.DEVNULL)
        try:
            wait_listening(nginx, https_port, error_log)
            yield Site(
                url=f"https://127.0.0.1:{https_port}",
                http_url=f"http://127.0.0.1:{http_port}",
                upstream_url=upstream,
                access_log=access_log,
                error_log=error_log,
                certificates=certificates,
            )
        finally:
            stop(nginx, signal.SIGTERM)
    finally:
        stop(server, signal.SIGINT)


def wait_logged(log: Path, pattern: str, count: int) -> str:
    """The access log once ``count`` of its lines match ``pattern``."""
    deadline = time.monotonic() + START_TIMEOUT
    while len(re.findall(pattern, logged := log.read_text(), re.M)) < count:
        assert time.monotonic() < deadline, f"{pattern!r} not {count} times in\n{logged}"
        time.sleep(0.1)
    return logged


def nginx_seconds(value: str) -> float:
    """An nginx time (``300s``, ``5m``, ``1m30s``, ``90``) in seconds."""
    units = {"ms": 0.001, "": 1, "s": 1, "m": 60, "h": 3600, "d": 86400}
    parts = re.findall(r"(\d+)(ms|s|m|h|d|)", value)
    assert parts and "".join(n + u for n, u in parts) == value, value
    return sum(int(number) * units[unit] for number, unit in parts)


def directive_in_location(location: str, directive: str) -> str:
    """The value of ``directive`` inside ``location <location> { ... }`` of the site file."""
    text = SITE.read_text()
    block = re.search(r"location\s+" + re.escape(location) + r"\s*\{(.*?)\}", text, re.S)
    assert block, f"no location {location} in docs/deploy/nginx.conf"
    found = re.search(rf"^\s*{directive}\s+(\S+);", block.group(1), re.M)
    assert found, f"no {directive} in location {location}"
    return found.group(1)


async def test_rest_and_the_socket_go_through_nginx_over_tls(site: Site) -> None:
    """Over https with the CA trusted: /healthz answers, enter hands out a wss:// socket
    URL naming nginx's host and port, and that socket opens through nginx to a welcome."""
    context = site.certificates.client_context()
    async with httpx.AsyncClient(base_url=site.url, verify=context, timeout=30) as http:
        health = await http.get("/healthz")
        assert health.status_code == 200, health.text
        assert health.headers["strict-transport-security"] == "max-age=31536000"
        entered = await http.post("/v1/rooms/7/enter", headers=site.headers("alice"))
        assert entered.status_code == 200, entered.text
        body = entered.json()
    assert body["socketUrl"] == site.url.replace("https://", "wss://") + "/v1/ws"
    async with connect(
        body["socketUrl"],
        ssl=context,
        subprotocols=["tavkit.v1", f"tavkit.token.{body['socketToken']}"],  # type: ignore[list-item]
    ) as ws:
        welcome = json.loads(await ws.recv())
    assert welcome["type"] == "welcome", welcome


def test_the_unit_serves_where_nginx_proxies_and_trusts_it() -> None:
    """The unit's tavkit listens on loopback at nginx's upstream address and believes
    X-Forwarded-* from that address alone."""
    arguments = unit_arguments()
    upstream = re.findall(r"(?m)^\s*server (\S+);", SITE.read_text())
    host, port = option(arguments, "--host"), option(arguments, "--port")
    assert upstream == [f"{host}:{port}"]
    assert ipaddress.ip_address(host).is_loopback
    assert option(arguments, "--trusted-proxies") == f"{host}/32"


def test_the_socket_outlives_the_heartbeat_timeout_in_nginx() -> None:
    """nginx's read and send timeouts on /v1/ws exceed the server's heartbeat timeout
    (with room to spare), so tavkit, not nginx, decides when a silent socket ends."""
    default_timeout = next(
        field.default for field in dataclasses.fields(Settings) if field.name == "heartbeat_timeout"
    )
    assert isinstance(default_timeout, float)
    for directive in ("proxy_read_timeout", "proxy_send_timeout"):
        seconds = nginx_seconds(directive_in_location("= /v1/ws", directive))
        assert seconds >= 4 * default_timeout, (directive, seconds, default_timeout)


async def test_plain_http_is_redirected_to_https(site: Site) -> None:
    """A request on port 80 is redirected to the same path and query over https."""
    async with httpx.AsyncClient(timeout=30) as http:
        answer = await http.get(f"{site.http_url}/v1/rooms/7?lang=zh")
    assert answer.status_code == 301
    assert answer.headers["location"] == "https://localhost/v1/rooms/7?lang=zh"


@pytest.mark.parametrize("size", [MAX_BODY_BYTES, MAX_BODY_BYTES + 1])
async def test_a_body_at_the_limit_gets_the_same_answer_with_or_without_nginx(
    site: Site, size: int
) -> None:
    """A 64 KiB body reaches tavkit (which finds it is not JSON) and one byte more is
    refused by nginx, with the answer (status and seed-shaped JSON) tavkit itself gives
    without nginx. Neither body is written to a temporary file on the way."""
    context = site.certificates.client_context()
    body = b"x" * size
    answers = []
    for base, verify in ((site.url, context), (site.upstream_url, True)):
        async with httpx.AsyncClient(base_url=base, verify=verify, timeout=30) as http:
            answer = await http.post(
                "/v1/rooms/7/enter",
                headers={**site.headers("bob"), "Content-Type": "application/json"},
                content=body,
            )
        assert answer.headers["content-type"].startswith("application/json"), answer.text
        answers.append((answer.status_code, answer.json()))
    assert answers[0] == answers[1]
    status, error = answers[0]
    assert status == 400
    assert error["errorCode"] == (10001 if size > MAX_BODY_BYTES else 10003), error
    nginx_log = site.error_log.read_text()
    # The larger body was refused by nginx itself: its answer is the site file's.
    refused = f"client intended to send too large body: {size} bytes" in nginx_log
    assert refused is (size > MAX_BODY_BYTES), nginx_log
    assert "buffered to a temporary file" not in nginx_log


async def test_query_strings_stay_out_of_the_access_log(site: Site) -> None:
    """The access log names each request's path but never its query (a deprecated
    ``?token=`` socket URL would otherwise write the token to disk)."""
    secret = "s3cr3t-token-value"
    context = site.certificates.client_context()
    async with httpx.AsyncClient(base_url=site.url, verify=context, timeout=30) as http:
        await http.get(f"/healthz?token={secret}")
        await http.get(f"/v1/ws?token={secret}")
    logged = site.access_log.read_text()
    assert '"GET /healthz HTTP/1.1" 200' in logged, logged
    assert "/v1/ws" in logged
    assert secret not in logged


@pytest.mark.browser
def test_the_browser_component_calls_through_nginx(site: Site) -> None:
    """Two Chromium tabs load the component from nginx's https origin, enter and
    exchange video through it: REST over HTTP/2 and both sockets upgraded by nginx."""
    pin = f"--ignore-certificate-errors-spki-list={site.certificates.spki_sha256}"
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=[*FLAGS, pin])
        try:
            context = browser.new_context(viewport={"width": 1280, "height": 800})
            context.add_init_script(INSTRUMENT)
            alice = CallPage(context.new_page(), site.url, "alice")
            assert alice.page.evaluate("window.isSecureContext") is True
            assert alice.join(site, 21) is True
            alice.wait_state("waiting")
            bob = CallPage(context.new_page(), site.url, "bob")
            assert bob.join(site, 21) is True
            alice.wait_connected("bob")
            bob.wait_connected("alice")
            alice.wait_video_decoding("bob")
            bob.wait_video_decoding("alice")
            assert alice.tv("errors") == [] and bob.tv("errors") == []
        finally:
            browser.close()
    # nginx writes a socket's line when it closes, just after the browser has gone.
    logged = wait_logged(site.access_log, r'"GET /v1/ws HTTP/1.1" 101 .*HeadlessChrome', 2)
    assert logged.count('"POST /v1/rooms/21/enter HTTP/2.0" 200') == 2, logged
