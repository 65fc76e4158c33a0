"""``tavkit janus config``: the folder it writes starts a Janus with only what tavkit uses."""

from __future__ import annotations

import os
import stat
import subprocess
import sys
from pathlib import Path

import pytest

from tavkit.server.ice import turn_credentials
from tavkit.server.sfu.config import (
    PLUGIN_LIBRARY,
    JanusOptions,
    JanusTurn,
    find_janus_libraries,
    janus_config,
)
from tavkit.server.sfu.janus import JanusError, JanusSession

from .conftest import free_port, host_address, start_janus, stop_janus, tail

SECRET = "s" * 32


def _tavkit(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    environ = {k: v for k, v in os.environ.items() if not k.startswith("TAVKIT_")}
    return subprocess.run(
        [sys.executable, "-m", "tavkit", *args],
        capture_output=True,
        text=True,
        timeout=60,
        env={**environ, **(env or {})},
    )


async def test_the_folder_tavkit_janus_config_writes_starts_janus(tmp_path: Path) -> None:
    """The command writes a folder (secret 0600, never printed) that ``janus -F`` runs with
    only VideoRoom and the WebSocket transport, refusing requests without the secret."""
    address = host_address()
    if find_janus_libraries() is None:
        pytest.fail("Janus is not installed: run `make janus`")
    directory, port = tmp_path / "janus", free_port()
    args = ["janus", "config", "--dir", str(directory), "--ws-port", str(port)]
    args += ["--rtp-min-port", "40000", "--rtp-max-port", "49999"]
    done = _tavkit(*args, *(["--ice-address", address] if address else []))
    assert done.returncode == 0, done.stderr
    secret_file = directory / "api_secret"
    secret = secret_file.read_text().strip()
    assert len(secret) >= 32 and secret not in done.stdout + done.stderr
    assert stat.S_IMODE(secret_file.stat().st_mode) == 0o600
    assert stat.S_IMODE((directory / "janus.jcfg").stat().st_mode) == 0o600
    assert stat.S_IMODE(directory.stat().st_mode) == 0o700
    assert [p.name for p in (directory / "plugins").iterdir()] == [PLUGIN_LIBRARY]

    again = _tavkit(*args)
    assert again.returncode == 0, again.stderr
    assert secret_file.read_text().strip() == secret, "writing again must keep tavkit's secret"

    log = tmp_path / "janus.log"
    process = start_janus(directory, port, log)
    try:
        session = await JanusSession.connect(f"ws://127.0.0.1:{port}", api_secret=secret)
        info = await session.server_info()
        await session.close()
        with pytest.raises(JanusError) as refused:
            await JanusSession.connect(f"ws://127.0.0.1:{port}")
    finally:
        stop_janus(process)
    assert set(info["plugins"]) == {"janus.plugin.videoroom"}, tail(log)
    assert set(info["transports"]) == {"janus.transport.websockets"}
    assert info["api_secret"] is True and info["version_string"].startswith("1.")
    assert refused.value.janus_code == 403


def test_tavkit_janus_config_refuses_bad_options_with_a_message(tmp_path: Path) -> None:
    """A bad port range or a missing TURN secret ends with exit 2 and says why."""
    bad_range = _tavkit(
        "janus", "config", "--dir", str(tmp_path / "a"), "--rtp-min-port", "50000",
        "--rtp-max-port", "40000",
    )  # fmt: skip
    assert bad_range.returncode == 2 and "RTP ports" in bad_range.stderr
    no_turn = _tavkit("janus", "config", "--dir", str(tmp_path / "b"), "--turn")
    assert no_turn.returncode == 2 and "TAVKIT_TURN_SECRET" in no_turn.stderr


def test_the_configuration_says_what_tavkit_needs(tmp_path: Path) -> None:
    """The files hold the secret, the ports, the NAT settings and no admin API."""
    options = JanusOptions(
        api_secret=SECRET,
        ws_port=8199,
        rtp_min_port=30000,
        rtp_max_port=30100,
        ice_addresses=("eth0",),
        public_ips=("203.0.113.7",),
    )
    files = janus_config(options, tmp_path)
    core = files["janus.jcfg"]
    assert f'api_secret = "{SECRET}"' in core
    assert 'rtp_port_range = "30000-30100"' in core
    assert 'ice_enforce_list = "eth0"' in core and 'nat_1_1_mapping = "203.0.113.7"' in core
    assert f'"{tmp_path.resolve()}"' in core.split("protected_folders")[1]
    assert "turn_server" not in core and "admin_secret" not in core
    ws = files["janus.transport.websockets.jcfg"]
    assert "ws_port = 8199" in ws and 'ws_ip = "127.0.0.1"' in ws
    assert "admin_ws = false" in ws and "admin_wss = false" in ws
    assert "string_ids = true" in files["janus.plugin.videoroom.jcfg"]
    assert SECRET not in repr(options)


def test_janus_s_turn_credential_is_minted_from_tavkit_s_turn_secret(tmp_path: Path) -> None:
    """With TURN, Janus gets a credential coturn accepts: the REST scheme, tavkit's secret."""
    turn = JanusTurn.minted("turn-secret", "turn.example.org", 3478, days=30, now=1_000_000)
    assert turn_credentials("turn-secret", "janus", 1_000_000 + 30 * 86400) == (
        turn.username,
        turn.password,
    )
    core = janus_config(JanusOptions(api_secret=SECRET, turn=turn), tmp_path)["janus.jcfg"]
    assert 'turn_server = "turn.example.org"' in core and f'turn_pwd = "{turn.password}"' in core
    assert turn.password not in repr(turn)


@pytest.mark.parametrize(
    "change",
    [
        {"api_secret": 'short"'},
        {"api_secret": SECRET + '"\nadmin_secret = "x'},
        {"ice_addresses": ('eth0" ignore = "x',)},
        {"ws_host": "localhost"},
        {"rtp_min_port": 0},
        {"session_timeout": 5},
        {"debug_level": 5},
    ],
)
def test_values_that_could_break_the_file_are_refused(change: dict[str, object]) -> None:
    """A value that is not one word (a quote, a newline) or is out of range raises ValueError;
    so does a log level at which Janus would print its secrets."""
    with pytest.raises(ValueError):
        JanusOptions(**{"api_secret": SECRET, **change})  # type: ignore[arg-type]
