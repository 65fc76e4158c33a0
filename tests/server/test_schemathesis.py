"""schemathesis against the live server's ``/openapi.json``, as a member and as the admin.

The schemathesis CLI runs as a subprocess against a real server (each database), with
every check it has but ``positive_data_acceptance`` (a schema-valid request may still
be refused by the state it meets: exiting a room one is not in is 14004 by contract).
Its checks hold each answer to the spec: no 5xx, every status documented, every body
of the documented shape, ``Allow`` on 405, 401 without credentials. Then every
recorded exchange is read back from its HAR report to hold every 4xx to the seed's
exact ``{module, errorCode, errorMsg}``, which a JSON schema alone does not (it allows
extra members).

A session seeded with the worst input the server accepts (see
:mod:`.test_hostile_input`) is offered for the ``{uuid}`` parameters, so the history,
logs and quality reads meet stored data instead of 404s. The example budget per
operation is bounded to keep each run around a minute on two cores; the seed is
random, so every run explores a little more.
"""

from __future__ import annotations

import asyncio
import json
import sys
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

import httpx
import pytest

from .test_hostile_input import WORST_LEAF, log_body, nested
from .test_signaling import member, until

if TYPE_CHECKING:
    from conftest import RunningServer, ServerFactory

MAX_EXAMPLES = 12
"""Examples per operation and phase: about 1,500 requests a run (22 operations)."""
RUN_TIMEOUT = 240.0
SEED_ROOM = 4242
CHECKS_EXCLUDED = "positive_data_acceptance"
SEED_MODULES = {"trtc", "server", "http", "avkit"}


async def seed_session(server: RunningServer) -> str:
    """A session of alice and bob holding the worst accepted message and log; its UUID."""
    async with (
        httpx.AsyncClient(base_url=server.url, timeout=30) as http,
        member(http, server, "alice", SEED_ROOM) as (alice, welcome),
        member(http, server, "bob", SEED_ROOM) as (bob, _),
    ):
        room_uuid: str = welcome["roomUuid"]
        data = nested(28, WORST_LEAF)
        await alice.send(
            json.dumps({"type": "message", "clientMsgId": "worst", "kind": "custom", "data": data})
        )
        await until(bob, "message")
        batch = log_body(room_uuid, data={"d": nested(20, {"s": "\U0001f600\x00"})})
        logged = await http.post("/v1/logs", json=batch, headers=server.headers("alice"))
        assert logged.status_code == 200, logged.text
    return room_uuid


def config_file(directory: Path, room_uuid: str) -> Path:
    """A ``schemathesis.toml`` offering the seeded session and its room and members."""
    path = directory / "schemathesis.toml"
    path.write_text(
        f"""
[dictionaries.sessions]
values = ["{room_uuid}"]

[dictionaries.rooms]
values = [{SEED_ROOM}]

[dictionaries.users]
values = ["alice", "bob"]

[parameters]
"path.uuid" = {{ dictionary = "sessions", probability = 0.7 }}
"path.roomId" = {{ dictionary = "rooms", probability = 0.3 }}
"path.userId" = {{ dictionary = "users", probability = 0.5 }}
"query.userId" = {{ dictionary = "users", probability = 0.5 }}
"""
    )
    return path


async def run_schemathesis(
    server: RunningServer, headers: dict[str, str], workdir: Path, phases: str
) -> tuple[int, str, list[dict[str, Any]]]:
    """Run the CLI's ``phases`` against ``server``; its exit code, output and exchanges."""
    room_uuid = await seed_session(server)
    har = workdir / "exchanges.har"
    args = [
        sys.executable,
        "-m",
        "schemathesis.cli",
        "--config-file",
        str(config_file(workdir, room_uuid)),
        "run",
        f"{server.url}/openapi.json",
        "--checks",
        "all",
        "--exclude-checks",
        CHECKS_EXCLUDED,
        "--phases",
        phases,
        "--max-examples",
        str(MAX_EXAMPLES),
        # One worker: CPython 3.11's ``ast`` constructor is not thread-safe (gh-106905),
        # and hypothesis parses lambda sources while describing strategies; two worker
        # threads failed runs with "AST constructor recursion depth mismatch".
        "--workers",
        "1",
        "--generation-database",
        "none",
        "--request-timeout",
        "30",
        "--report",
        "har",
        "--report-har-path",
        str(har),
        "--no-color",
        # Hypothesis's generation health checks judge how fast the *generator* runs; on
        # a loaded two-core CI box they fired inside schemathesis's coverage phase and
        # failed the run with no request sent. The server's behaviour is what is tested.
        "--suppress-health-check",
        "all",
    ]
    for name, value in headers.items():
        args += ["--header", f"{name}: {value}"]
    process = await asyncio.create_subprocess_exec(
        *args,
        cwd=workdir,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
    )
    try:
        output, _ = await asyncio.wait_for(process.communicate(), RUN_TIMEOUT)
    except TimeoutError:
        process.kill()
        await process.wait()
        raise
    entries: list[dict[str, Any]] = []
    if har.exists():
        entries = json.loads(har.read_text(encoding="utf-8"))["log"]["entries"]
    assert process.returncode is not None
    return process.returncode, output.decode(errors="replace"), entries


def seed_shape_problems(entries: list[dict[str, Any]]) -> list[str]:
    """Every exchange answered with a 5xx, or a 4xx whose body is not exactly seed-shaped."""
    problems = []
    for entry in entries:
        status = entry["response"]["status"]
        where = f"{entry['request']['method']} {entry['request']['url']} -> {status}"
        if status >= 500:
            problems.append(where)
        if not 400 <= status < 500:
            continue
        try:
            body = json.loads(entry["response"]["content"].get("text") or "")
        except ValueError:
            problems.append(f"{where}: not JSON")
            continue
        if (
            not isinstance(body, dict)
            or set(body) != {"module", "errorCode", "errorMsg"}
            or body["module"] not in SEED_MODULES
            or not isinstance(body["errorCode"], int)
            or not isinstance(body["errorMsg"], str)
            or not body["errorMsg"]
        ):
            problems.append(f"{where}: {body!r:.200}")
    return problems


def failure_report(output: str) -> str:
    """The heads of schemathesis's failure and error sections, then its summary.

    A runtime error's traceback can run to tens of kilobytes of quoted source; its first
    lines name the exception, so each section is cut short rather than the output's tail.
    """
    parts = []
    for header in ("FAILURES", "ERRORS"):
        at = output.find(f" {header} ")
        if at >= 0:
            parts.append(output[at : at + 4000])
    parts.append(output[output.rfind("SUMMARY") :] if "SUMMARY" in output else output[-4000:])
    return "\n[...]\n".join(parts)


# Each role on one database, not both on both: a run is ~100 s of schemathesis's own
# generation (requests are ~6 s of it), four runs were 7 of make test's 33 minutes, and
# the admin's credentials reach every operation the member's do. The stores are the
# same code above SQLAlchemy; the rest of tests/server runs on both. The coverage phase
# (boundary and wrong-type values, the same every run: 73 of a run's ~105 s) runs with
# the admin's credentials only, which reach every operation past authentication; the
# member's run fuzzes (random each run) and walks the links.
@pytest.mark.parametrize(
    ("database", "role", "phases"),
    [("sqlite", "user", "fuzzing,stateful"), ("postgres", "admin", "coverage,fuzzing,stateful")],
    indirect=["database"],
)
async def test_schemathesis_finds_no_5xx_and_only_seed_shaped_4xx(
    server_factory: ServerFactory, tmp_path: Path, role: str, phases: str
):
    """Every operation fuzzed: no 5xx, every status documented, every 4xx seed-shaped."""
    server = server_factory(demo=True)
    headers = server.admin_headers() if role == "admin" else server.headers("alice")
    started = time.monotonic()
    code, output, entries = await run_schemathesis(server, headers, tmp_path, phases)
    summary = output[output.rfind("SUMMARY") :] if "SUMMARY" in output else output[-3000:]
    assert code == 0, f"schemathesis failed:\n{failure_report(output)}"
    # A run that never got going makes a handful; fuzzing alone makes ~600, with coverage ~1,800.
    assert len(entries) >= 300, f"too few requests were made:\n{summary}"
    assert seed_shape_problems(entries) == []
    statuses = sorted({e["response"]["status"] for e in entries})
    print(f"{role}: {len(entries)} requests in {time.monotonic() - started:.0f} s, {statuses}")
