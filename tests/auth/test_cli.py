"""The signature commands, run as a user runs them: exit codes, stdout and stderr."""

from __future__ import annotations

import base64
import json
import os
import subprocess
import sys
import zlib

from tavkit.auth import decode_sig, gen_private_map_key, gen_user_sig

APP = "1400000000"
KEY = "5bd2850fff3ecb11d7c805251c51ee463a25727bddc2385f3fa8bfee1bb93b5e"
USER = "xiaojun"
TIME = 1700000000
EXPIRE = 15552000
VECTOR_USERBUF_HEX = "0000077869616f6a756e53724e00000004d266413f00000000ff00000000"
COMMON = ["--sdk-app-id", APP, "--key", KEY, "--user-id", USER]


def tavkit(*args: str, key_env: str | None = None) -> subprocess.CompletedProcess[str]:
    """Run ``python -m tavkit ARGS`` with a wide terminal and TAVKIT_KEY only if given."""
    env = {name: value for name, value in os.environ.items() if name != "TAVKIT_KEY"}
    env |= {"COLUMNS": "240", "NO_COLOR": "1", "TERM": "dumb"}
    if key_env is not None:
        env["TAVKIT_KEY"] = key_env
    return subprocess.run(
        [sys.executable, "-m", "tavkit", *args],
        capture_output=True,
        text=True,
        env=env,
        timeout=60,
        check=False,
    )


def test_usersig_gen_prints_the_vector_signature_document() -> None:
    """``usersig gen --time`` prints one line that decodes to the published vector."""
    done = tavkit("usersig", "gen", *COMMON, "--expire", str(EXPIRE), "--time", str(TIME))
    assert done.returncode == 0, done.stderr
    sig = done.stdout.strip()
    assert "\n" not in sig
    packed = base64.b64decode(sig.replace("*", "+").replace("-", "/").replace("_", "="))
    document = json.loads(zlib.decompress(packed))
    assert document["TLS.sig"] == "LvA7d/Iw7gSsnskvVzBDPOCCDbuNCw4GHwTC0bip+B4="
    assert (document["TLS.time"], document["TLS.expire"]) == (TIME, EXPIRE)


def test_usersig_verify_accepts_a_valid_signature() -> None:
    """``usersig verify`` exits 0 with an OK line naming the expiry."""
    sig = gen_user_sig(int(APP), KEY, USER, EXPIRE, now=TIME)
    done = tavkit("usersig", "verify", *COMMON, "--now", str(TIME + EXPIRE), sig)
    assert done.returncode == 0, done.stderr
    assert done.stdout.startswith("OK")
    assert "2024-05-12T22:13:20Z" in done.stdout


def test_usersig_verify_reports_expiry_with_both_codes() -> None:
    """An expired userSig exits 1 with the reason, avkit 70346 and vendor 70001 on stderr."""
    sig = gen_user_sig(int(APP), KEY, USER, EXPIRE, now=TIME)
    done = tavkit("usersig", "verify", *COMMON, "--now", str(TIME + EXPIRE + 1), sig)
    assert done.returncode == 1
    assert done.stdout == ""
    assert done.stderr.startswith("invalid: expired (avkit 70346; vendor 70001)")


def test_usersig_verify_reports_a_wrong_key() -> None:
    """A userSig signed with another key exits 1 as bad_hmac (vendor 70009)."""
    sig = gen_user_sig(int(APP), "0" * 64, USER, now=TIME)
    done = tavkit("usersig", "verify", *COMMON, "--now", str(TIME), sig)
    assert done.returncode == 1
    assert "invalid: bad_hmac (avkit 70346; vendor 70009)" in done.stderr


def test_key_may_come_from_the_environment() -> None:
    """Without --key, TAVKIT_KEY is used; with neither it is a usage error (exit 2)."""
    sig = gen_user_sig(int(APP), KEY, USER, now=TIME)
    args = ["usersig", "verify", "--sdk-app-id", APP, "--user-id", USER, "--now", str(TIME), sig]
    assert tavkit(*args, key_env=KEY).returncode == 0
    missing = tavkit(*args)
    assert missing.returncode == 2
    assert "--key" in missing.stderr


def test_privatemapkey_gen_and_verify_a_numeric_room() -> None:
    """A key minted for room 1234 carries the vector's record and verifies for that room."""
    room = ["--room-id", "1234"]
    gen = ["--privilege", "255", "--expire", str(EXPIRE), "--time", str(TIME)]
    done = tavkit("privatemapkey", "gen", *COMMON, *room, *gen)
    assert done.returncode == 0, done.stderr
    pmk = done.stdout.strip()
    assert decode_sig(pmk).userbuf == bytes.fromhex(VECTOR_USERBUF_HEX)
    ok = tavkit("privatemapkey", "verify", *COMMON, *room, "--now", str(TIME), pmk)
    assert ok.returncode == 0, ok.stderr
    assert "1234" in ok.stdout and "RECV_SUB" in ok.stdout


def test_privatemapkey_verify_reports_the_wrong_room() -> None:
    """A key for another room exits 1 with room_mismatch and avkit 87."""
    pmk = gen_private_map_key(int(APP), KEY, USER, room_str="lobby", now=TIME)
    done = tavkit("privatemapkey", "verify", *COMMON, "--room-str", "hall", "--now", str(TIME), pmk)
    assert done.returncode == 1
    assert done.stderr.startswith("invalid: room_mismatch (avkit 87)")
    assert "lobby" in done.stderr


def test_privatemapkey_verify_reports_expiry_as_86() -> None:
    """An expired privateMapKey exits 1 with avkit 86."""
    pmk = gen_private_map_key(int(APP), KEY, USER, room_id=5, expire=10, now=TIME)
    done = tavkit(
        "privatemapkey", "verify", *COMMON, "--room-id", "5", "--now", str(TIME + 11), pmk
    )
    assert done.returncode == 1
    assert done.stderr.startswith("invalid: expired (avkit 86; vendor 70001)")


def test_room_options_are_exclusive_and_required() -> None:
    """Both or neither of --room-id/--room-str is a usage error (exit 2), gen and verify."""
    both = ["--room-id", "1", "--room-str", "a"]
    assert tavkit("privatemapkey", "gen", *COMMON, *both, "--privilege", "ALL").returncode == 2
    assert tavkit("privatemapkey", "gen", *COMMON, "--privilege", "ALL").returncode == 2
    verify = tavkit("privatemapkey", "verify", *COMMON, *both, "x")
    assert verify.returncode == 2
    assert "exactly one of --room-id and --room-str" in verify.stderr


def test_unknown_privilege_is_a_usage_error() -> None:
    """An unknown privilege name exits 2 and lists the known names."""
    done = tavkit("privatemapkey", "gen", *COMMON, "--room-id", "1", "--privilege", "admin")
    assert done.returncode == 2
    assert "VIEWER" in done.stderr


def test_sig_inspect_shows_the_document_and_the_grant() -> None:
    """``sig inspect`` needs no key and prints the document and the record with names."""
    gen = tavkit(
        "privatemapkey", "gen", *COMMON, "--room-str", "lobby", "--privilege", "viewer",
        "--time", str(TIME),
    )  # fmt: skip
    assert gen.returncode == 0, gen.stderr
    done = tavkit("sig", "inspect", gen.stdout.strip())
    assert done.returncode == 0, done.stderr
    shown = json.loads(done.stdout)
    assert shown["document"]["TLS.identifier"] == USER
    assert shown["document"]["TLS.time"] == TIME
    assert shown["userbuf"]["roomStr"] == "lobby"
    assert shown["userbuf"]["privilege"] == 42
    assert shown["userbuf"]["privilegeNames"] == ["ENTER", "RECV_AUDIO", "RECV_VIDEO"]


def test_sig_inspect_of_a_user_sig_has_no_userbuf() -> None:
    """Inspecting a plain userSig shows its document and expiry and no userbuf."""
    done = tavkit("sig", "inspect", gen_user_sig(int(APP), KEY, USER, EXPIRE, now=TIME))
    assert done.returncode == 0, done.stderr
    shown = json.loads(done.stdout)
    assert shown["expiresAt"] == TIME + EXPIRE
    assert "userbuf" not in shown


def test_sig_inspect_refuses_garbage() -> None:
    """Undecodable input exits 1 with a message on stderr and nothing on stdout."""
    done = tavkit("sig", "inspect", "definitely-not-a-signature")
    assert done.returncode == 1
    assert done.stdout == ""
    assert done.stderr.startswith("cannot decode:")
