"""The admin is an identity an ordinary userSig cannot obtain: the admin userId signed
with a separate admin key. The demo never mints it, nor the server's reserved ids."""

from __future__ import annotations

import json
import os
import stat
import subprocess
import sys
import uuid
from pathlib import Path
from typing import Any

import httpx
import pytest
from conftest import APP_ID, RunningServer, ServerFactory, random_key
from typer.testing import CliRunner

from tavkit.auth import SignatureError, gen_user_sig, verify_user_sig
from tavkit.cli import app as tavkit_cli
from tavkit.errors import ServerCode
from tavkit.server.app import DEMO_ADMIN_KEY_FILE, prepare
from tavkit.server.settings import AppConfig, Settings, read_apps_file
from tavkit.server.signaling.tokens import SECRET_FILE

from ._util import expect_error

OTHER_APP = 1400000002


def _arguments(spec: dict[str, Any], path: str, operation: dict[str, Any]) -> str:
    """``path`` with each parameter filled with a well-formed value of its schema."""
    for param in operation.get("parameters", []):
        if param.get("in") != "path":
            continue
        schema = param.get("schema", {})
        if schema.get("type") == "integer":
            value = "1"
        elif schema.get("format") == "uuid" or param["name"] == "uuid":
            value = str(uuid.uuid4())
        else:
            value = "alice"
        path = path.replace("{" + param["name"] + "}", value)
    return path


def admin_operations(spec: dict[str, Any]) -> list[tuple[str, str, dict[str, Any]]]:
    """Every admin operation of the spec: tagged ``admin``, under ``/v1/admin/``, or
    described as the admin's ("Admin: ..." or "... (admin only)")."""
    found = []
    for path, item in spec["paths"].items():
        for method, operation in item.items():
            if method not in ("get", "post", "put", "delete", "patch"):
                continue
            text = f"{operation.get('summary', '')} {operation.get('description', '')}"
            if (
                "admin" in operation.get("tags", [])
                or path.startswith("/v1/admin/")
                or "Admin:" in text
                or "admin only" in text
            ):
                found.append((method.upper(), path, operation))
    return found


async def _call(
    http: httpx.AsyncClient,
    spec: dict[str, Any],
    method: str,
    path: str,
    op: dict[str, Any],
    h: Any,
) -> httpx.Response:
    body = b"{}" if "requestBody" in op else None
    return await http.request(method, _arguments(spec, path, op), headers=h, content=body)


async def test_no_ordinary_usersig_reaches_any_admin_route(sqlite_server: RunningServer):
    """Every admin route of /openapi.json refuses app-key userSigs (10005); the admin passes."""
    server = sqlite_server
    outsider = AppConfig(OTHER_APP, random_key())
    admin_id = server.settings.admin_user
    ordinary = {
        "a member": server.headers("alice"),
        "the admin userId signed with the app key": server.headers(admin_id),
        "the admin key naming another userId": server.headers(
            "alice", sig=gen_user_sig(APP_ID, server.settings.admin_key or "", "alice", 600)
        ),
        "the admin key under an app it does not serve": server.headers(
            admin_id, sig=server.admin_sig(app=outsider), app_id=OTHER_APP
        ),
    }
    async with httpx.AsyncClient(base_url=server.url, timeout=30) as http:
        spec = (await http.get("/openapi.json")).json()
        operations = admin_operations(spec)
        assert len(operations) >= 9, [f"{m} {p}" for m, p, _ in operations]
        assert ("DELETE", "/v1/sessions/{uuid}/recordings/{id}") in {
            (m, p) for m, p, _ in operations
        }
        for method, path, op in operations:
            for who, headers in ordinary.items():
                response = await _call(http, spec, method, path, op, headers)
                assert response.status_code == 401, (method, path, who)
                expect_error(response, ServerCode.UNAUTHORISED)
            admitted = await _call(http, spec, method, path, op, server.admin_headers())
            assert admitted.status_code < 500, (method, path, admitted.text)
            body = admitted.json()
            assert body.get("errorCode") != ServerCode.UNAUTHORISED, (method, path, body)


async def test_the_admin_userid_signed_with_the_app_key_is_told_why(sqlite_server: RunningServer):
    """An app-key userSig of ``administrator`` is an ordinary user, and the refusal says so."""
    async with httpx.AsyncClient(base_url=sqlite_server.url, timeout=30) as http:
        response = await http.get("/v1/admin/rooms", headers=sqlite_server.headers("administrator"))
        assert "signed with the app key" in expect_error(response, ServerCode.UNAUTHORISED)
        entered = await http.post(
            "/v1/rooms/9/enter", headers=sqlite_server.headers("administrator")
        )
        assert entered.status_code == 200, entered.text  # an ordinary member like any other


async def test_without_an_admin_key_there_is_no_admin(sqlite_server_factory: ServerFactory):
    """With no admin key configured, admin routes answer 10005 "no admin key"."""
    server = sqlite_server_factory(admin_key=None)
    would_be = gen_user_sig(APP_ID, random_key(), "administrator", 600)
    async with httpx.AsyncClient(base_url=server.url, timeout=30) as http:
        for headers in (
            server.headers("administrator"),
            server.headers("administrator", sig=would_be),
        ):
            response = await http.get("/v1/admin/rooms", headers=headers)
            message = expect_error(response, ServerCode.UNAUTHORISED)
            assert "no admin key is configured" in message or "HMAC" in message


async def test_an_apps_own_admin_key_overrides_the_servers(sqlite_server_factory: ServerFactory):
    """An app with its own admin key takes only that key; other apps keep the server's."""
    own = AppConfig(OTHER_APP, random_key(), admin_key=random_key())
    server = sqlite_server_factory(apps=(AppConfig(APP_ID, random_key()), own))
    shared = server.settings.admin_key or ""
    async with httpx.AsyncClient(base_url=server.url, timeout=30) as http:
        mine = await http.get("/v1/admin/rooms", headers=server.admin_headers(app=own))
        assert mine.status_code == 200, mine.text
        wrong = server.headers(
            "administrator", sig=gen_user_sig(OTHER_APP, shared, "administrator"), app_id=OTHER_APP
        )
        expect_error(await http.get("/v1/admin/rooms", headers=wrong), ServerCode.UNAUTHORISED)
        first = await http.get("/v1/admin/rooms", headers=server.admin_headers())
        assert first.status_code == 200, first.text


async def test_the_demo_never_mints_the_admin_or_a_reserved_id(
    sqlite_server_factory: ServerFactory,
):
    """POST /v1/demo/usersig refuses the admin userId and ``__`` ids with 10004."""
    server = sqlite_server_factory(demo=True, admin_user="boss")
    async with httpx.AsyncClient(base_url=server.url, timeout=30) as http:
        for user_id in ("boss", "__rec.0123", "__", "__admin"):
            response = await http.post("/v1/demo/usersig", json={"userId": user_id})
            assert "userId" in expect_error(response, ServerCode.INVALID_PARAMETER), user_id
        minted = await http.post("/v1/demo/usersig", json={"userId": "_alice"})
        assert minted.status_code == 200, minted.text
        sig = minted.json()["userSig"]
        verify_user_sig(sig, sdk_app_id=server.app_id, key=server.key, user_id="_alice")


def test_demo_mode_keeps_an_owner_only_admin_key(tmp_path: Path):
    """Demo mode creates one admin key in the data dir (0600, dir 0700) and reuses it."""
    data = tmp_path / "demo-data"
    first = prepare(Settings(demo=True, data_dir=data))
    again = prepare(Settings(demo=True, data_dir=data))
    assert first.admin_key is not None and first.admin_key == again.admin_key
    assert first.admin_key != first.apps[0].key
    assert stat.S_IMODE(data.stat().st_mode) == 0o700
    assert stat.S_IMODE((data / DEMO_ADMIN_KEY_FILE).stat().st_mode) == 0o600
    configured = prepare(Settings(demo=True, data_dir=tmp_path / "x", admin_key="c" * 32))
    assert configured.admin_key == "c" * 32
    assert prepare(Settings(data_dir=tmp_path / "plain")).admin_key is None


def test_an_admin_key_must_differ_from_the_app_key():
    """The admin key equal to an app key would make every app-key userSig an admin."""
    key = random_key()
    with pytest.raises(ValueError, match="admin_key must differ"):
        Settings(apps=(AppConfig(APP_ID, key),), admin_key=key)
    with pytest.raises(ValueError, match="must differ"):
        AppConfig(APP_ID, key, admin_key=key)
    with pytest.raises(ValueError, match="admin_key must be"):
        Settings(admin_key="short")
    assert "admin_key='***'" in repr(Settings(admin_key=random_key()))
    assert key not in repr(AppConfig(APP_ID, random_key(), admin_key=key))


def test_the_apps_file_is_read_and_its_errors_show_no_key(tmp_path: Path):
    """The apps file gives apps (pmk, own admin key); a bad one is named, its key not shown."""
    key, admin = random_key(), random_key()
    good = tmp_path / "apps.json"
    good.write_text(
        json.dumps(
            [
                {"sdkAppId": APP_ID, "key": key},
                {
                    "sdkAppId": OTHER_APP,
                    "key": admin[::-1],
                    "requirePrivateMapKey": True,
                    "adminKey": admin,
                },
            ]
        )
    )
    apps = read_apps_file(good)
    assert apps[0] == AppConfig(APP_ID, key)
    assert apps[1].require_private_map_key and apps[1].admin_key == admin
    settings = Settings.from_env(
        {"TAVKIT_APPS_FILE": str(good), "TAVKIT_APPS": f"7:{random_key()}"}
    )
    assert [a.sdk_app_id for a in settings.apps] == [7, APP_ID, OTHER_APP]
    for content in (
        [{"sdkAppId": APP_ID, "key": key + "!"}],
        [{"sdkAppId": APP_ID, "key": key, "adminKey": key}],
        [{"sdkAppId": APP_ID, "key": key, "extra": key}],
        {"sdkAppId": APP_ID, "key": key},
        [{"sdkAppId": str(APP_ID), "key": key}],
    ):
        bad = tmp_path / "bad.json"
        bad.write_text(json.dumps(content))
        with pytest.raises(ValueError) as caught:
            read_apps_file(bad)
        assert key not in str(caught.value) and str(bad) in str(caught.value)
    with pytest.raises(ValueError, match="cannot read"):
        read_apps_file(tmp_path / "missing.json")


def test_tavkit_usersig_admin_signs_with_the_admin_key():
    """``tavkit usersig admin`` signs with TAVKIT_ADMIN_KEY, never with TAVKIT_KEY."""
    app_key, admin_key = random_key(), random_key()
    runner = CliRunner()
    result = runner.invoke(
        tavkit_cli,
        ["usersig", "admin", "--sdk-app-id", str(APP_ID)],
        env={"TAVKIT_KEY": app_key, "TAVKIT_ADMIN_KEY": admin_key},
    )
    assert result.exit_code == 0, result.output
    sig = result.output.strip()
    verify_user_sig(sig, sdk_app_id=APP_ID, key=admin_key, user_id="administrator")
    with pytest.raises(SignatureError):
        verify_user_sig(sig, sdk_app_id=APP_ID, key=app_key, user_id="administrator")
    missing = runner.invoke(
        tavkit_cli, ["usersig", "admin", "--sdk-app-id", "1"], env={"TAVKIT_KEY": app_key}
    )
    assert missing.exit_code == 2


async def test_a_huge_sdkappid_is_refused_not_a_500(sqlite_server: RunningServer):
    """An sdkAppId of 4,301+ digits is 10005 in a header and in /v1/logs' body auth."""
    huge = "1" * 5000
    async with httpx.AsyncClient(base_url=sqlite_server.url, timeout=30) as http:
        headers = {**sqlite_server.headers("alice"), "X-TAvKit-SdkAppId": huge}
        for method, path in (("POST", "/v1/rooms/1/enter"), ("GET", "/v1/admin/rooms")):
            response = await http.request(method, path, headers=headers)
            expect_error(response, ServerCode.UNAUTHORISED)
        expect_error(
            await http.post("/v1/logs", headers=headers, json={"roomUuid": str(uuid.uuid4())}),
            ServerCode.UNAUTHORISED,
        )
        body = {
            "auth": {"sdkAppId": huge, "userId": "alice", "userSig": sqlite_server.sig("alice")},
            "roomUuid": str(uuid.uuid4()),
        }
        expect_error(await http.post("/v1/logs", json=body), ServerCode.UNAUTHORISED)


def test_serve_reads_the_apps_file_warns_about_keys_in_argv_and_keeps_files_private(
    tmp_path: Path,
):
    """``tavkit serve``: --apps-file apps work, --app warns, the data dir is 0700, files 0600."""
    own_admin, file_key, argv_key = random_key(), random_key(), random_key()
    apps_file = tmp_path / "apps.json"
    apps_file.write_text(
        json.dumps([{"sdkAppId": OTHER_APP, "key": file_key, "adminKey": own_admin}])
    )
    data = tmp_path / "data"
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "tavkit",
            "serve",
            "--port",
            "0",
            "--data-dir",
            str(data),
            "--app",
            f"{APP_ID}:{argv_key}",
            "--apps-file",
            str(apps_file),
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, "PYTHONUNBUFFERED": "1", "TAVKIT_ADMIN_KEY": ""},
    )
    try:
        assert process.stdout is not None and process.stderr is not None
        line = process.stdout.readline()
        assert line.startswith("tavkit serving on "), line
        url = line.removeprefix("tavkit serving on ").strip()
        sig = gen_user_sig(OTHER_APP, own_admin, "administrator", 600)
        admin = {
            "X-TAvKit-SdkAppId": str(OTHER_APP),
            "X-TAvKit-UserId": "administrator",
            "X-TAvKit-UserSig": sig,
        }
        assert httpx.get(f"{url}/v1/admin/rooms", headers=admin, timeout=30).status_code == 200
        member = {
            "X-TAvKit-SdkAppId": str(APP_ID),
            "X-TAvKit-UserId": "alice",
            "X-TAvKit-UserSig": gen_user_sig(APP_ID, argv_key, "alice", 600),
        }
        assert httpx.post(f"{url}/v1/rooms/1/enter", headers=member, timeout=30).is_success
        assert stat.S_IMODE(data.stat().st_mode) == 0o700
        for name in (SECRET_FILE, "tavkit.db"):
            assert stat.S_IMODE((data / name).stat().st_mode) == 0o600, name
    finally:
        process.terminate()
        _, err = process.communicate(timeout=30)
    assert "--app shows its secret in the process list" in err
    assert argv_key not in err and file_key not in err and own_admin not in err


async def test_the_dashboard_names_the_app_of_a_single_app_server(
    sqlite_server_factory: ServerFactory,
):
    """With one app the sign-in page carries its sdkAppId; with two it names neither."""
    one = sqlite_server_factory()
    two = sqlite_server_factory(
        apps=(AppConfig(APP_ID, random_key()), AppConfig(1400000009, random_key()))
    )
    async with httpx.AsyncClient(timeout=30) as http:
        single = (await http.get(f"{one.url}/dashboard")).text
        several = (await http.get(f"{two.url}/dashboard")).text
    assert f'<meta name="tavkit-sdk-app-id" content="{APP_ID}" />' in single
    assert "tavkit-sdk-app-id" not in several
    assert "1400000009" not in several
