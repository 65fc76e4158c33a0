"""Secrets stay out of URLs and logs: the socket token rides in the handshake header, and
no log line of a full call, server's or client's, at INFO or DEBUG, holds a secret."""

from __future__ import annotations

import asyncio
import json
import logging
import os
import sys
from pathlib import Path
from typing import Any

import httpx
import pytest
import websockets
from client._util import LOOPBACK, receiving, small_pattern, until
from conftest import APP_ID, RunningServer, random_key
from websockets.asyncio.client import connect

from tavkit.auth import gen_private_map_key, gen_user_sig
from tavkit.client import TAvKit
from tavkit.client.api import EnterResult
from tavkit.protocol import CloseCode
from tavkit.protocol.calls import user_subprotocol
from tavkit.server.logformat import RedactingFilter, redact
from tavkit.server.signaling.tokens import (
    SUBPROTOCOL,
    TOKEN_ALPHABET,
    TOKEN_SUBPROTOCOL_PREFIX,
    mint,
)

from ._secrets import LoggedServer, assert_no_secrets, find_leaks

ROOM = 4242
_QUIET = logging.getLogger("tests.raw_socket")
"""The logger of this file's own raw sockets: a test's handshake is not the product's."""
_QUIET.setLevel(logging.WARNING)


async def _enter(http: httpx.AsyncClient, headers: dict[str, str], room: int) -> dict[str, Any]:
    response = await http.post(f"/v1/rooms/{room}/enter", headers=headers)
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    return body


async def test_the_token_rides_in_the_subprotocol_header(sqlite_server: RunningServer):
    """Offered as ``tavkit.token.<token>``, the token opens the socket; ``tavkit.v1`` is chosen."""
    server = sqlite_server
    async with httpx.AsyncClient(base_url=server.url, timeout=30) as http:
        entered = await _enter(http, server.headers("alice"), 11)
    offered = [SUBPROTOCOL, TOKEN_SUBPROTOCOL_PREFIX + entered["socketToken"]]
    async with connect(server.ws_url, subprotocols=offered, logger=_QUIET) as ws:  # type: ignore[arg-type]
        assert ws.subprotocol == SUBPROTOCOL
        assert json.loads(await ws.recv())["type"] == "welcome"
    # One character of the signature changed: not its last, whose low bits are base64's
    # padding (two tokens differing only there decode alike), and "AA" written over the
    # end was the same token about once in a thousand.
    token = entered["socketToken"]
    changed = token[:-3] + ("B" if token[-3] == "A" else "A") + token[-2:]
    forged = [SUBPROTOCOL, TOKEN_SUBPROTOCOL_PREFIX + changed]
    async with connect(server.ws_url, subprotocols=forged, logger=_QUIET) as ws:  # type: ignore[arg-type]
        assert json.loads(await ws.recv())["errorCode"] == 10005
        with pytest.raises(websockets.ConnectionClosed) as closed:
            await ws.recv()
        assert closed.value.rcvd is not None and closed.value.rcvd.code == CloseCode.UNAUTHORISED


async def test_a_token_in_the_url_is_refused_with_where_it_goes(sqlite_server: RunningServer):
    """``?token=`` (accepted for one release) is refused with 10005 and 4401, even next to a
    good header: a URL lands in access logs and history, so the secret must not ride
    there. The message names the header; the member can still open its socket properly."""
    server = sqlite_server
    async with httpx.AsyncClient(base_url=server.url, timeout=30) as http:
        entered = await _enter(http, server.headers("bob"), 12)
    token = entered["socketToken"]
    header = ["tavkit.v1", f"tavkit.token.{token}"]
    for offered in (None, header):
        url = f"{server.ws_url}?token={token}"
        async with connect(url, logger=_QUIET, subprotocols=offered) as ws:  # type: ignore[arg-type]
            error = json.loads(await ws.recv())
            assert error["errorCode"] == 10005
            assert "Sec-WebSocket-Protocol" in error["errorMsg"]
            with pytest.raises(websockets.ConnectionClosed) as closed:
                await ws.recv()
            assert closed.value.rcvd is not None
            assert closed.value.rcvd.code == CloseCode.UNAUTHORISED
    async with connect(server.ws_url, logger=_QUIET, subprotocols=header) as ws:  # type: ignore[arg-type]
        assert json.loads(await ws.recv())["type"] == "welcome"


def test_every_token_is_a_valid_subprotocol():
    """Tokens use only characters an HTTP token allows, whatever the userId."""
    import uuid

    for user in ("alice", "a.b@c-d_e", "Z" * 64, "0"):
        token = mint(
            b"k" * 32,
            sdk_app_id=4294967295,
            room_uuid=uuid.uuid4(),
            user_id=user,
            connection_id=uuid.uuid4().hex,
            ttl=60,
        )
        assert TOKEN_ALPHABET.fullmatch(token), token


def test_the_filter_redacts_arguments_and_keeps_numbers():
    """uvicorn's access record keeps its shape (``%d`` still an int) but loses the token."""
    sig = gen_user_sig(APP_ID, random_key(), "alice", 60)
    record = logging.LogRecord(
        "uvicorn.access",
        logging.INFO,
        __file__,
        1,
        '%s - "%s %s HTTP/%s" %d',
        (
            "127.0.0.1:5",
            "GET",
            "/v1/ws?token=eyJhIjoxfQ.c2lnbmF0dXJlLXNpZ25hdHVyZQ&x=1",
            "1.1",
            101,
        ),
        None,
    )
    assert RedactingFilter().filter(record)
    assert record.getMessage() == '127.0.0.1:5 - "GET /v1/ws?token=***&x=1 HTTP/1.1" 101'
    try:
        raise ValueError(f"bad {sig}")
    except ValueError:
        failed = logging.LogRecord("x", logging.ERROR, __file__, 1, "boom", None, sys.exc_info())
    RedactingFilter().filter(failed)
    assert failed.exc_text is not None and sig not in failed.exc_text and "eJ***" in failed.exc_text
    password, token = random_key(), random_key()
    user_offer = user_subprotocol(1400000001, "alice", sig, "phone")  # carries the userSig
    for text, secret in (
        (f"X-TAvKit-UserSig={sig[:40]}", sig[:40]),
        (f'{{"credential": "{password}", "urls": "turn:x"}}', password),
        (f"Sec-WebSocket-Protocol: tavkit.v1, tavkit.token.{token}", token),
        (f"Sec-WebSocket-Protocol: tavkit.v1, {user_offer}", user_offer[12:]),
    ):
        assert find_leaks([text], {"secret": secret}), text
        assert not find_leaks([redact(text)], {"secret": secret}), text


def _signature_of(token: str) -> str:
    """The part of a socket token that makes it one: its MAC (the claims before the dot
    are base64 of ids, and alike from token to token)."""
    return token.partition(".")[2]


@pytest.mark.parametrize(("level", "fmt"), [("info", "text"), ("debug", "json")])
async def test_no_log_line_of_a_full_call_holds_a_secret(
    tmp_path: Path,
    caplog: pytest.LogCaptureFixture,
    monkeypatch: pytest.MonkeyPatch,
    level: str,
    fmt: str,
):
    """A call (two Python clients, chat, logs, admin, a refused ?token=) logs no secret."""
    app_key, admin_key, turn_secret = random_key(), random_key(), random_key()
    served = LoggedServer(
        tmp_path,
        level,
        fmt,
        {"APP_KEY": app_key, "TAVKIT_ADMIN_KEY": admin_key, "TAVKIT_TURN_SECRET": turn_secret},
    )
    secrets = {"app key": app_key, "admin key": admin_key, "TURN secret": turn_secret}
    entered: list[EnterResult] = []
    original = EnterResult.from_wire.__func__  # type: ignore[attr-defined]

    def observed(cls: type[EnterResult], body: dict[str, Any]) -> EnterResult:
        result: EnterResult = original(cls, body)
        entered.append(result)
        return result

    monkeypatch.setattr(EnterResult, "from_wire", classmethod(observed))
    caplog.set_level(level.upper())
    kits: dict[str, TAvKit] = {}
    try:
        for user in ("alice", "bob"):
            sig = gen_user_sig(APP_ID, app_key, user, 3600)
            pmk = gen_private_map_key(APP_ID, app_key, user, room_id=ROOM, privilege=255)
            secrets[f"{user}'s userSig"], secrets[f"{user}'s privateMapKey"] = sig, pmk
            kit = kits[user] = TAvKit(served.url, source=small_pattern(), host_addresses=LOOPBACK)
            async with asyncio.timeout(60):
                await kit.start(
                    sdk_app_id=APP_ID, user_id=user, user_sig=sig, room_id=ROOM, private_map_key=pmk
                )
        alice, bob = kits["alice"], kits["bob"]
        await until(receiving(alice, "bob", video=5, audio=5), "alice decodes bob")
        await until(receiving(bob, "alice", video=5, audio=5), "bob decodes alice")
        await alice.send_message("hello bob")
        await bob.send_custom_message({"hello": "alice"})

        admin_sig = gen_user_sig(APP_ID, admin_key, "administrator", 600)
        secrets["admin userSig"] = admin_sig
        admin = {
            "X-TAvKit-SdkAppId": str(APP_ID),
            "X-TAvKit-UserId": "administrator",
            "X-TAvKit-UserSig": admin_sig,
        }
        carol_sig = gen_user_sig(APP_ID, app_key, "carol", 600)
        secrets["carol's userSig"] = carol_sig
        carol = {**admin, "X-TAvKit-UserId": "carol", "X-TAvKit-UserSig": carol_sig}
        async with httpx.AsyncClient(base_url=served.url, timeout=30) as http:
            rooms = await http.get("/v1/admin/rooms", headers=admin)
            assert rooms.status_code == 200, rooms.text
            old_style = await _enter(http, carol, ROOM + 1)
            secrets["carol's socket token"] = _signature_of(old_style["socketToken"])
            for i, server in enumerate(old_style["iceServers"]):
                if "credential" in server:
                    secrets[f"carol's TURN password {i}"] = server["credential"]
            ws_url = old_style["socketUrl"] + "?token=" + old_style["socketToken"]
            async with connect(ws_url, logger=_QUIET) as ws:  # type: ignore[arg-type]
                assert json.loads(await ws.recv())["errorCode"] == 10005
            bad = {**carol, "X-TAvKit-UserSig": carol_sig[:-6] + "AAAAAA"}
            refused = await http.post(f"/v1/rooms/{ROOM + 1}/heartbeat", headers=bad)
            assert refused.status_code == 401
        await bob.hangup()
        await alice.hangup()
    finally:
        for kit in kits.values():  # a failed call must not leave media threads running
            await kit.aclose()
        server_lines = served.stop()
    for result in entered:
        secrets[f"{result.user_id}'s socket token"] = _signature_of(result.socket_token)
        for i, server in enumerate(result.ice_servers):
            if "credential" in server:
                secrets[f"{result.user_id}'s TURN password {i}"] = str(server["credential"])
    assert {r.user_id for r in entered} == {"alice", "bob"}
    assert any("TURN password" in name for name in secrets), "no TURN credential was minted"
    assert_no_secrets(server_lines, secrets, where=f"tavkit serve --log-level {level}")
    # The lines that would have held a secret were there, redacted.
    assert any("WebSocket /v1/ws?token=***" in line for line in server_lines), "no access line"
    if level == "debug":
        assert any("DEBUG" in line or '"debug"' in line for line in server_lines)
    assert_no_secrets(caplog.text.splitlines(), secrets, where=f"the Python clients at {level}")


def test_the_data_dir_and_its_files_are_owner_only(sqlite_server: RunningServer):
    """Under the usual umask 022 too: data and SQLite dirs 0700, secret and database 0600."""
    import stat

    old = os.umask(0o022)
    os.umask(old)
    assert old & 0o077 != 0o077, "the test process's umask would hide the bug"
    db = sqlite_server.database.sqlite_path
    assert db is not None
    data = sqlite_server.settings.data_dir
    modes = {
        "data dir": (data, 0o700),
        "token secret": (data / "socket-token-secret", 0o600),
        "SQLite dir": (db.parent, 0o700),
        "SQLite file": (db, 0o600),
    }
    for what, (path, mode) in modes.items():
        assert stat.S_IMODE(path.stat().st_mode) == mode, what
