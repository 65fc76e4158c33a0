"""Settings: read from TAVKIT_* variables, validated, and never showing secrets."""

from __future__ import annotations

import ipaddress
import json
import re
from pathlib import Path

import pytest

from tavkit.server.app import is_loopback, prepare
from tavkit.server.settings import AppConfig, Settings, read_apps_file

KEY = "ab" * 32


def test_defaults_match_the_documentation():
    """With no variables the settings are the documented defaults."""
    settings = Settings.from_env({})
    assert (settings.host, settings.port, settings.data_dir) == (
        "127.0.0.1",
        8080,
        Path("./tavkit-data"),
    )
    assert (settings.heartbeat_interval, settings.heartbeat_timeout) == (5.0, 15.0)
    assert (settings.max_members_of("mesh"), settings.max_members_of("sfu")) == (6, 50)
    assert (settings.admin_user, settings.demo) == ("administrator", False)
    assert settings.ice_servers == () and settings.ice_allowed_networks == ()
    assert settings.effective_database_url.startswith("sqlite+aiosqlite:///")
    assert settings.effective_database_url.endswith("tavkit-data/tavkit.db")


def test_every_variable_is_read():
    """Each TAVKIT_* variable lands in its field with the right type."""
    settings = Settings.from_env(
        {
            "TAVKIT_HOST": "::1",
            "TAVKIT_PORT": "0",
            "TAVKIT_DATA_DIR": "/tmp/x",
            "TAVKIT_DATABASE_URL": "postgresql+asyncpg://u:pw@db/tavkit",
            "TAVKIT_DATABASE_SCHEMA": "calls",
            "TAVKIT_APPS": f"1400000001:{KEY}, 1400000002:{KEY}:pmk",
            "TAVKIT_ADMIN_USER": "boss",
            "TAVKIT_HEARTBEAT_INTERVAL": "0.25",
            "TAVKIT_HEARTBEAT_TIMEOUT": "1.5",
            "TAVKIT_MAX_MEMBERS": "3",
            "TAVKIT_CLOSE_GRACE": "0",
            "TAVKIT_SWEEP_INTERVAL": "0.1",
            "TAVKIT_ICE_SERVERS": "stun:127.0.0.1:3478,turn:127.0.0.1:3478",
            "TAVKIT_ICE_ALLOWED_NETWORKS": "127.0.0.0/8, ::1/128",
            "TAVKIT_TURN_SECRET": "hush",
            "TAVKIT_DEMO": "true",
            "TAVKIT_UNSAFE_DEMO": "0",
            "TAVKIT_CORS_ORIGINS": "https://a.example,https://b.example",
        }
    )
    assert settings.apps == (
        AppConfig(1400000001, KEY),
        AppConfig(1400000002, KEY, require_private_map_key=True),
    )
    assert (settings.port, settings.heartbeat_interval, settings.close_grace) == (0, 0.25, 0.0)
    assert settings.ice_servers == ("stun:127.0.0.1:3478", "turn:127.0.0.1:3478")
    assert settings.ice_allowed_networks == (
        ipaddress.ip_network("127.0.0.0/8"),
        ipaddress.ip_network("::1/128"),
    )
    assert settings.demo is True and settings.unsafe_demo is False
    assert settings.cors_origins == ("https://a.example", "https://b.example")
    assert settings.app(1400000002).require_private_map_key
    assert settings.app(1) is None


def test_ice_servers_may_be_json():
    """TAVKIT_ICE_SERVERS also takes a JSON list of URLs and RTCIceServer objects."""
    settings = Settings.from_env(
        {
            "TAVKIT_ICE_SERVERS": '["stun:10.0.0.1", {"urls": ["turn:10.0.0.1"], '
            '"username": "u", "credential": "c"}]'
        }
    )
    assert settings.ice_servers[0] == "stun:10.0.0.1"
    assert dict(settings.ice_servers[1]) == {
        "urls": ["turn:10.0.0.1"],
        "username": "u",
        "credential": "c",
    }


def test_repr_hides_every_secret():
    """Keys, the TURN secret, database passwords and ICE credentials never show in repr."""
    settings = Settings.from_env(
        {
            "TAVKIT_APPS": f"1400000001:{KEY}",
            "TAVKIT_TURN_SECRET": "turn-hush",
            "TAVKIT_DATABASE_URL": "postgresql+asyncpg://user:db-hush@host/tavkit",
            "TAVKIT_ICE_SERVERS": '[{"urls": "turn:h", "username": "u", "credential": "ice-hush"}]',
        }
    )
    text = repr(settings)
    for secret in (KEY, "turn-hush", "db-hush", "ice-hush"):
        assert secret not in text
    assert "1400000001" in text and "user:***@host" in text


@pytest.mark.parametrize(
    ("variable", "value"),
    [
        ("TAVKIT_PORT", "eighty"),
        ("TAVKIT_PORT", "70000"),
        ("TAVKIT_APPS", "1400000001"),
        ("TAVKIT_APPS", f"x:{KEY}"),
        ("TAVKIT_APPS", "1400000001:short"),
        ("TAVKIT_APPS", f"1400000001:{KEY}:admin"),
        ("TAVKIT_APPS", f"1400000001:{KEY},1400000001:{KEY}"),
        ("TAVKIT_HEARTBEAT_TIMEOUT", "2"),
        ("TAVKIT_HEARTBEAT_INTERVAL", "-1"),
        ("TAVKIT_SWEEP_INTERVAL", "nan"),
        ("TAVKIT_MAX_MEMBERS", "0"),
        ("TAVKIT_ICE_SERVERS", "[1, 2]"),
        ("TAVKIT_ICE_ALLOWED_NETWORKS", "not-a-network"),
        ("TAVKIT_DEMO", "maybe"),
        ("TAVKIT_DATABASE_SCHEMA", "Robert'); DROP"),
    ],
)
def test_bad_values_are_refused_with_the_variable_named(variable, value):
    """An unreadable or inconsistent value raises ValueError (naming the variable if parsing)."""
    with pytest.raises(ValueError):
        Settings.from_env({variable: value})


def test_an_sfu_room_of_more_than_50_is_refused_saying_why():
    """TAVKIT_MAX_MEMBERS above 50 in SFU mode is refused, naming the SFU's ceiling; up to
    50 is taken as it is, and a mesh keeps whatever size the operator chose."""
    sfu = {"TAVKIT_MEDIA_MODE": "sfu", "TAVKIT_JANUS_URL": "ws://127.0.0.1:8188"}
    with pytest.raises(
        ValueError, match="max_members 51 is more than an SFU room holds: at most 50"
    ):
        Settings.from_env({**sfu, "TAVKIT_MAX_MEMBERS": "51"})
    assert Settings.from_env({**sfu, "TAVKIT_MAX_MEMBERS": "50"}).max_members_of("sfu") == 50
    assert Settings.from_env({"TAVKIT_MAX_MEMBERS": "9"}).max_members_of("mesh") == 9


def test_demo_mode_refuses_a_public_host_and_keeps_its_app(tmp_path):
    """Demo mode needs loopback (or unsafe_demo) and reuses its app across restarts."""
    with pytest.raises(ValueError, match="unsafe-demo"):
        prepare(Settings(demo=True, host="0.0.0.0", data_dir=tmp_path))
    assert prepare(Settings(demo=True, host="0.0.0.0", unsafe_demo=True, data_dir=tmp_path)).apps
    first = prepare(Settings(demo=True, data_dir=tmp_path))
    again = prepare(Settings(demo=True, data_dir=tmp_path))
    assert first.apps == again.apps and len(first.apps) == 1
    assert prepare(Settings(data_dir=tmp_path / "plain")).apps == ()
    assert [
        is_loopback(h) for h in ("127.0.0.1", "::1", "[::1]", "localhost", "10.0.0.1", "0.0.0.0")
    ] == [
        True,
        True,
        True,
        True,
        False,
        False,
    ]


def test_webhook_settings_are_read_checked_and_hidden():
    """TAVKIT_WEBHOOK_* are read; the secret never shows in repr; URL and secret go together."""
    settings = Settings.from_env(
        {
            "TAVKIT_APPS": f"1400000001:{KEY}",
            "TAVKIT_WEBHOOK_URL": "https://hooks.example.com/tavkit",
            "TAVKIT_WEBHOOK_SECRET": "whsec-hush-0123456789",
            "TAVKIT_WEBHOOK_RETRY_CAP": "60",
        }
    )
    assert settings.webhook_url == "https://hooks.example.com/tavkit"
    assert (settings.webhook_retry_cap, settings.webhook_give_up) == (60.0, 86400.0)
    assert "whsec-hush" not in repr(settings)
    app = AppConfig(1400000001, KEY)
    with pytest.raises(ValueError, match="go together"):
        Settings(apps=(app,), webhook_url="https://hooks.example.com/")
    with pytest.raises(ValueError, match="http"):
        Settings(apps=(app,), webhook_url="ftp://x/", webhook_secret="s" * 16)
    with pytest.raises(ValueError, match="16-256"):
        Settings(apps=(app,), webhook_url="http://x/", webhook_secret="short")
    with pytest.raises(ValueError, match="single-app"):
        Settings(
            apps=(app, AppConfig(1400000002, KEY)),
            webhook_url="http://x/",
            webhook_secret="s" * 16,
        )
    with pytest.raises(ValueError, match="webhook_retry_base"):
        Settings(webhook_retry_base=0)


def test_media_mode_is_mesh_unless_told_and_sfu_needs_a_janus():
    """The media mode is mesh by default; sfu reads Janus's URLs (several, comma-separated,
    none twice, each a ws:// or wss:// WebSocket API: Janus's HTTP API is refused saying
    so, without the URL's credentials) and their shared secret (hidden in repr), and is
    refused without a URL, or for a mode that does not exist."""
    assert Settings.from_env({}).media_mode == "mesh"
    settings = Settings.from_env(
        {
            "TAVKIT_MEDIA_MODE": "sfu",
            "TAVKIT_JANUS_URL": "ws://127.0.0.1:8188",
            "TAVKIT_JANUS_API_SECRET": "janus-hush",
        }
    )
    assert (settings.media_mode, settings.janus_urls) == ("sfu", ("ws://127.0.0.1:8188",))
    several = Settings.from_env(
        {"TAVKIT_MEDIA_MODE": "sfu", "TAVKIT_JANUS_URL": "ws://10.0.0.1:8188, ws://10.0.0.2:8188"}
    )
    assert several.janus_urls == ("ws://10.0.0.1:8188", "ws://10.0.0.2:8188")
    with pytest.raises(ValueError, match="a Janus is named twice"):
        Settings.from_env({"TAVKIT_MEDIA_MODE": "sfu", "TAVKIT_JANUS_URL": "ws://a:1,ws://a:1"})
    assert Settings(media_mode="sfu", janus_urls=("wss://janus.example:8989",)).janus_urls
    http = "http://admin:hush@10.0.0.1:8088/janus"
    with pytest.raises(ValueError, match="HTTP API; tavkit speaks its WebSocket") as refused:
        Settings.from_env({"TAVKIT_MEDIA_MODE": "sfu", "TAVKIT_JANUS_URL": http})
    assert "hush" not in str(refused.value) and "http://10.0.0.1:8088" in str(refused.value)
    for junk in ("10.0.0.1:8188", "ws://", "tcp://10.0.0.1:8188"):
        with pytest.raises(ValueError, match="is not a ws:// or wss:// URL with a host"):
            Settings(media_mode="sfu", janus_urls=(junk,))
    assert settings.janus_api_secret == "janus-hush" and "janus-hush" not in repr(settings)
    with pytest.raises(ValueError, match="needs a Janus: give --janus-url"):
        Settings.from_env({"TAVKIT_MEDIA_MODE": "sfu"})
    with pytest.raises(ValueError, match="media_mode must be mesh, sfu or auto"):
        Settings.from_env({"TAVKIT_MEDIA_MODE": "p2p"})


JANUS = {"TAVKIT_JANUS_URL": "ws://127.0.0.1:8188"}


def test_auto_reads_its_threshold_and_needs_a_janus():
    """TAVKIT_MEDIA_MODE=auto with TAVKIT_SFU_ABOVE switches rooms above that many members
    (2 unless told); without a Janus it is refused at startup saying what to give, and a
    threshold an SFU room cannot grow past is refused."""
    settings = Settings.from_env({**JANUS, "TAVKIT_MEDIA_MODE": "auto", "TAVKIT_SFU_ABOVE": "3"})
    assert (settings.media_mode, settings.sfu_above, settings.uses_sfu) == ("auto", 3, True)
    assert settings.max_members_of("auto") == 50  # the room it becomes
    assert Settings.from_env({**JANUS, "TAVKIT_MEDIA_MODE": "auto"}).sfu_above == 2
    with pytest.raises(ValueError, match="media mode auto needs a Janus: give --janus-url"):
        Settings.from_env({"TAVKIT_MEDIA_MODE": "auto"})
    for above in ("0", "50"):
        with pytest.raises(ValueError, match="sfu_above must be a whole number, 1 to 49"):
            Settings.from_env({**JANUS, "TAVKIT_MEDIA_MODE": "auto", "TAVKIT_SFU_ABOVE": above})
    assert not Settings.from_env({}).uses_sfu  # `make serve`: mesh, no Janus needed


def test_an_app_may_have_a_media_mode_of_its_own(tmp_path: Path):
    """The apps file's mediaMode and sfuAbove override the server's mode for that app's rooms
    only; an app asking for sfu or auto on a server without a Janus is refused at startup,
    naming the app."""
    apps = tmp_path / "apps.json"
    entries = [
        {"sdkAppId": 1, "key": KEY, "mediaMode": "sfu"},
        {"sdkAppId": 2, "key": KEY, "mediaMode": "auto", "sfuAbove": 4},
        {"sdkAppId": 3, "key": KEY},
    ]
    apps.write_text(json.dumps(entries))
    settings = Settings.from_env({**JANUS, "TAVKIT_APPS_FILE": str(apps)})
    assert [settings.media_mode_of(app) for app in (1, 2, 3, 99)] == ["sfu", "auto", "mesh", "mesh"]
    assert [settings.sfu_above_of(app) for app in (2, 3)] == [4, 2]
    assert settings.uses_sfu and settings.media_mode == "mesh"
    with pytest.raises(ValueError, match="app 1 asks for media mode sfu, which needs a Janus"):
        Settings.from_env({"TAVKIT_APPS_FILE": str(apps)})


@pytest.mark.parametrize(
    ("entry", "message"),
    [
        ({"mediaMode": "p2p"}, 'app [0]: mediaMode must be "mesh", "sfu" or "auto"'),
        ({"mediaMode": "auto", "sfuAbove": 0}, "app [0]: sfuAbove must be a whole number, 1 to 49"),
        ({"mediaMode": "auto", "sfuAbove": True}, "app [0]: sfuAbove must be a whole number"),
        ({"mediaMode": "sfu", "sfuAbove": 3}, 'app [0]: sfuAbove goes with "mediaMode": "auto"'),
    ],
)
def test_a_bad_media_mode_in_the_apps_file_names_the_entry_and_field(
    tmp_path: Path, entry: dict[str, object], message: str
):
    """A mediaMode that does not exist, or an sfuAbove that is no threshold or comes
    without auto, is refused naming the entry and the field (never the key)."""
    apps = tmp_path / "apps.json"
    apps.write_text(json.dumps([{"sdkAppId": 1, "key": KEY, **entry}]))
    with pytest.raises(ValueError, match=re.escape(message)) as caught:
        read_apps_file(apps)
    assert KEY not in str(caught.value)


@pytest.mark.parametrize(
    "name", ["admin_key", "turn_secret", "metrics_token", "webhook_secret", "janus_api_secret"]
)
def test_each_secret_may_come_from_a_file(tmp_path: Path, name: str):
    """TAVKIT_<SECRET>_FILE names a file holding the secret (its final newline dropped), as
    container secrets are mounted; giving the variable too, or a file that is missing or
    empty, is refused naming the variable and the file, never the secret."""
    variable = f"TAVKIT_{name.upper()}"
    secret = "S3cr3tFromAFile0123456789"
    secret_file = tmp_path / "secret"
    secret_file.write_text(f"  {secret}\n")
    env = {"TAVKIT_WEBHOOK_URL": "http://127.0.0.1:9/hooks"} if name == "webhook_secret" else {}
    settings = Settings.from_env({**env, f"{variable}_FILE": str(secret_file)})
    assert getattr(settings, name) == secret
    with pytest.raises(ValueError, match=f"{variable}_FILE: give it or {variable}, not both"):
        Settings.from_env({**env, variable: secret, f"{variable}_FILE": str(secret_file)})
    (tmp_path / "empty").write_text("\n")
    for path, why in ((tmp_path / "missing", "cannot read"), (tmp_path / "empty", "is empty")):
        with pytest.raises(ValueError, match=f"{variable}_FILE: .*{why}") as caught:
            Settings.from_env({**env, f"{variable}_FILE": str(path)})
        assert str(path) in str(caught.value) and secret not in str(caught.value)
