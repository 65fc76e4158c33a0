"""Cluster benchmark: signal relay across replicas, and what Redis costs per signal.

Run from the repository root (PostgreSQL at 127.0.0.1:5432 database ``test`` and Redis
at 127.0.0.1:6379, as ``make cluster`` uses; ``--pg-url`` and ``--redis-url`` say
otherwise)::

    .venv/bin/python bench/cluster.py [--loads 10x20,50x45] [--seconds 8] [--no-write]

Three setups, measured in the same run, one after the other and twice each,
alternating; both runs' latencies are pooled:

* **cross-replica**: two ``tavkit serve`` replicas on PostgreSQL and Redis; each pair's
  sender enters and opens its socket on the first replica, its receiver on the second,
  so every ``signal`` goes sender -> replica 1 -> Redis -> replica 2 -> receiver;
* **same replica, same cluster**: both ends of each pair on the first replica of the
  same cluster (the event still makes the round trip through Redis, as every event
  does on the Redis bus, but crosses no second process);
* **in-process bus**: one replica on PostgreSQL without Redis (the baseline).

The load is :mod:`relay`'s (pairs in a room each, each sender offering ``signal``
frames stamped with their send time), at each of ``--loads`` (``PAIRSxRATE``): a light
one, where latency is the path's, and relay's own, where it is mostly queueing.
Server CPU comes from ``/proc`` for the replicas and the Redis server during each
window, less what they spend idle with the same sockets open (measured for 2 s just
before), divided by the frames delivered: the CPU each relayed signal costs. Beside
it, the publish -> receive time of the two buses alone (one process, one subscriber,
one event at a time), as ``tests/server/test_redis_bus.py`` prints it.

Written into ``bench/RESULTS.md`` between the ``<!-- cluster -->`` markers.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import secrets
import socket
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

import asyncpg
import httpx
import redis.asyncio as redis
from _common import RESULTS, socket_offer, write_section
from _serve import ServeProcess, cpu_seconds, machine, p, raise_nofile, stamp
from relay import OPEN, Load, Run, pump
from websockets.asyncio.client import ClientConnection, connect

from tavkit.auth import gen_user_sig
from tavkit.loadtest import LoadConfig, LoadReport, LoadTest
from tavkit.server.bus import InProcessBus
from tavkit.server.cluster import _start_haproxy, _wait_healthy
from tavkit.server.events import SocketOpenEvent
from tavkit.server.redis_bus import RedisBus

APP_ID = 1400000095
PG_URL = "postgresql+asyncpg://postgres@127.0.0.1:5432/test"
REDIS_URL = "redis://127.0.0.1:6379/0"
MICRO_ROUNDS = 2000
HAPROXY_CFG = Path(__file__).parents[1] / "docs" / "deploy" / "haproxy.cfg"
SETTLE = 5.0
BUDGET = 50.0
"""The scaling comparison's CPU budget per replica, in % of one core."""
PAIRS = ("--max-members", "2")
"""The relay's rooms hold one pair each."""
IDLE_SECONDS = 2.0
SETUPS = ("cross", "same", "inproc")
LABELS = {
    "cross": "cross-replica (sender on replica 1, receiver on replica 2, Redis)",
    "same": "same replica of the cluster (both on replica 1, Redis)",
    "inproc": "in-process bus (one replica, no Redis): baseline",
}

Pair = tuple[ClientConnection, ClientConnection, str]


@dataclass
class Measured:
    """The pooled runs of one setup, and the CPU the servers spent on them."""

    runs: list[Run] = field(default_factory=list)
    cpu: float = 0.0  # seconds, replicas and Redis together
    redis_cpu: float = 0.0

    @property
    def latencies(self) -> list[float]:
        return [x for run in self.runs for x in run.latencies]

    @property
    def sent(self) -> int:
        return sum(run.sent for run in self.runs)

    @property
    def received(self) -> int:
        return sum(run.received for run in self.runs)

    @property
    def errors(self) -> int:
        return sum(run.errors for run in self.runs)

    @property
    def rate(self) -> float:
        window = sum(run.window for run in self.runs)
        return self.received / window if window else 0.0

    def ms(self, q: float) -> float:
        return p(self.latencies, q) * 1000

    def cpu_us(self) -> float:
        """Server CPU per delivered signal, microseconds."""
        return self.cpu / max(self.received, 1) * 1e6


# -- the servers --------------------------------------------------------------------------


def sqlalchemy_to_asyncpg(url: str) -> str:
    return url.replace("postgresql+asyncpg://", "postgresql://", 1)


async def create_schema(pg_url: str) -> str:
    """A fresh PostgreSQL schema for one setup (the replicas migrate it)."""
    schema = f"tavkit_bench_{secrets.token_hex(5)}"
    conn = await asyncpg.connect(sqlalchemy_to_asyncpg(pg_url))
    try:
        await conn.execute(f'CREATE SCHEMA "{schema}"')
    finally:
        await conn.close()
    return schema


async def drop_schema(pg_url: str, schema: str) -> None:
    conn = await asyncpg.connect(sqlalchemy_to_asyncpg(pg_url))
    try:
        await conn.execute(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')
    finally:
        await conn.close()


def replica(
    data: Path,
    key: str,
    pg_url: str,
    schema: str,
    name: str,
    redis_url: str | None,
    *extra: str,
) -> ServeProcess:
    """One ``tavkit serve`` on ``schema``, on Redis if ``redis_url`` (not started yet)."""
    options = ["--database-url", pg_url, "--database-schema", schema, "--replica-name", name]
    options += ["--no-rate-limits", *extra]  # one address stands for all
    if redis_url is not None:
        options += ["--redis-url", redis_url]
    return ServeProcess(data, APP_ID, key, *options)


async def redis_pid(url: str) -> int:
    """The Redis server's process id, to read its CPU time from /proc."""
    client = redis.Redis.from_url(url)
    try:
        info = await client.info("server")
    finally:
        await client.aclose()
    return int(info["process_id"])


# -- the load -------------------------------------------------------------------------------


async def open_pairs(
    sender_url: str, receiver_url: str, key: str, pairs: int, tag: str, first_room: int
) -> list[Pair]:
    """Enter each pair into a room of its own: the sender through ``sender_url``, the
    receiver through ``receiver_url``; each socket opens on the replica that answered."""
    out: list[Pair] = []
    async with httpx.AsyncClient(timeout=OPEN) as http:
        for n in range(pairs):
            ends = []
            for role, url in (("a", sender_url), ("b", receiver_url)):
                user = f"{tag}{role}{n}"
                headers = {
                    "X-TAvKit-SdkAppId": str(APP_ID),
                    "X-TAvKit-UserId": user,
                    "X-TAvKit-UserSig": gen_user_sig(APP_ID, key, user),
                }
                response = await http.post(
                    f"{url}/v1/rooms/{first_room + n}/enter", headers=headers
                )
                body = response.json()
                assert response.status_code == 200, body
                ws = await connect(
                    body["socketUrl"],
                    subprotocols=socket_offer(body["socketToken"]),
                    ping_interval=None,
                    compression=None,
                    open_timeout=OPEN,
                )
                welcome = json.loads(await ws.recv())
                assert welcome["type"] == "welcome", welcome
                ends.append(ws)
            out.append((ends[0], ends[1], f"{tag}b{n}"))
    return out


async def measure(
    sender_url: str,
    receiver_url: str,
    key: str,
    load: Load,
    seconds: float,
    tag: str,
    first_room: int,
    pids: list[int],
    redis_server: int | None,
    into: Measured,
) -> None:
    """Open the pairs, relay for ``seconds``, add the run and the CPU spent to ``into``."""
    sockets = await open_pairs(sender_url, receiver_url, key, load.pairs, tag, first_room)
    try:
        await asyncio.sleep(0.5)
        watched = [*pids, *([redis_server] if redis_server is not None else [])]
        # What the servers spend doing nothing (sweepers, pings) is not the signals' cost.
        idle_from, idle_at = [cpu_seconds(pid) for pid in watched], time.monotonic()
        await asyncio.sleep(IDLE_SECONDS)
        before, started = [cpu_seconds(pid) for pid in watched], time.monotonic()
        idle_rates = [(b - a) / (started - idle_at) for a, b in zip(idle_from, before, strict=True)]
        run = await pump(sockets, load.rate, seconds)
        elapsed = time.monotonic() - started
        spent = [
            max(cpu_seconds(pid) - b - rate * elapsed, 0.0)
            for pid, b, rate in zip(watched, before, idle_rates, strict=True)
        ]
        into.runs.append(run)
        into.cpu += sum(spent)
        if redis_server is not None:
            into.redis_cpu += spent[-1]
        print(
            f"  {tag:10} {run.rate:6.0f} msgs/s, {run.received}/{run.sent}, "
            f"p50 {p(run.latencies, 0.5) * 1000:.2f} ms, "
            f"p99 {p(run.latencies, 0.99) * 1000:.2f} ms, "
            f"errors {run.errors}, server CPU {sum(spent):.2f} s",
            flush=True,
        )
    finally:
        for a, b, _ in sockets:
            await a.close()
            await b.close()


# -- the buses alone ----------------------------------------------------------------------


async def publish_to_receive(redis_url: str) -> dict[str, list[float]]:
    """Publish -> receive times of each bus in this process, one event in flight."""
    times: dict[str, list[float]] = {}
    prefix = f"tavkit-bench-{secrets.token_hex(4)}:"
    async with RedisBus(redis_url, prefix=prefix) as redis_bus:
        for name, bus in (("inproc", InProcessBus()), ("redis", redis_bus)):
            async with bus.subscribe("latency") as subscription:
                events = aiter(subscription)
                samples = []
                for n in range(MICRO_ROUNDS + 100):
                    started = time.perf_counter()
                    await bus.publish("latency", SocketOpenEvent(f"user{n}", f"c{n}"))
                    async with asyncio.timeout(5):
                        await anext(events)
                    if n >= 100:  # warm-up
                        samples.append(time.perf_counter() - started)
            times[name] = samples
    return times


# -- scaling: members held by 1 and by 2 replicas ----------------------------------------


@dataclass
class Held:
    """One holding run: members and sockets held, the CPU shares, the load test's report."""

    replicas: int
    joined: int = 0
    sockets: int = 0
    shares: list[float] = field(default_factory=list)  # each replica's share of a core
    idle: list[float] = field(default_factory=list)  # the same, before anyone entered
    redis_share: float = 0.0
    report: LoadReport | None = None

    def per_1000(self) -> float:
        """Replicas' CPU (share of a core, all together) per 1000 sockets held."""
        return sum(self.shares) / max(self.sockets, 1) * 1000

    def marginal_per_1000(self) -> float:
        """What 1000 more members cost the replica holding them, idle CPU set aside."""
        return (sum(self.shares) - sum(self.idle)) / max(self.sockets, 1) * 1000

    def at_budget(self, budget: float) -> float:
        """Members each replica holds within ``budget`` % of a core (idle cost included)."""
        idle = sum(self.idle) / max(self.replicas, 1)
        return max(budget - idle, 0.0) / max(self.marginal_per_1000(), 1e-9) * 1000


async def hold(
    replicas: int, key: str, args: argparse.Namespace, redis_server: int, workdir: Path
) -> Held:
    """``args.members`` heartbeating members through HAProxy in front of ``replicas``
    replicas (PostgreSQL and Redis either way); the replicas' CPU while they hold."""
    held = Held(replicas)
    schema = await create_schema(args.pg_url)
    data = workdir / f"{replicas}-replicas"
    data.mkdir()
    servers = [
        replica(data, key, args.pg_url, schema, f"r{n}", args.redis_url) for n in range(replicas)
    ]
    try:
        for server in servers:
            server.start()
        listen = free_address()
        proxy = _start_haproxy(HAPROXY_CFG, listen, [s.url for s in servers], data)
        try:
            url = f"http://{listen}"
            await asyncio.to_thread(_wait_healthy, url, proxy)
            config = LoadConfig(
                url,
                APP_ID,
                key,
                participants=args.members,
                # Six to a room at most (the mesh's limit): 800 // 6 rooms put seven in two
                # of them, whose seventh member was refused 14000 (room full) every run.
                rooms=-(-args.members // 6),
                ramp=args.ramp,
                duration=args.hold,
                signal_interval=0,
                messages=0,
                recovery_timeout=30.0,
                timeout=60.0,
            )
            test = LoadTest(config)
            pids = [s.pid for s in servers]
            held.idle = await asyncio.to_thread(cpu_shares, pids, IDLE_SECONDS * 2)

            async def sample() -> None:
                while test.recorder.phase not in ("traffic", "done"):  # noqa: ASYNC110
                    await asyncio.sleep(0.2)
                await asyncio.sleep(SETTLE)
                window = max(args.hold - SETTLE - 2.0, 1.0)
                shares = await asyncio.to_thread(cpu_shares, [*pids, redis_server], window)
                held.shares, held.redis_share = shares[:-1], shares[-1]
                held.joined, held.sockets = test.recorder.joined, test.recorder.connected

            sampler = asyncio.create_task(sample())
            held.report = await test.run()
            await sampler
        finally:
            proxy.terminate()
            proxy.wait(10)
    finally:
        for server in servers:
            server.stop()
        await drop_schema(args.pg_url, schema)
    print(
        f"  {replicas} replica(s): {held.sockets} sockets, CPU {held.shares} "
        f"(redis {held.redis_share:.1f} %)",
        flush=True,
    )
    return held


def free_address() -> str:
    """A free loopback ``host:port`` for HAProxy to listen on (closed before it binds)."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return f"127.0.0.1:{probe.getsockname()[1]}"


def cpu_shares(pids: list[int], seconds: float) -> list[float]:
    """Each process's share of one core (%) over ``seconds`` (blocking)."""
    before, t0 = [cpu_seconds(pid) for pid in pids], time.monotonic()
    time.sleep(seconds)
    after, t1 = [cpu_seconds(pid) for pid in pids], time.monotonic()
    return [(a - b) / (t1 - t0) * 100 for a, b in zip(after, before, strict=True)]


async def scaling(args: argparse.Namespace) -> list[Held]:
    key = secrets.token_hex(32)
    limit = raise_nofile(args.members * 4 + 1024)
    print(f"open files limit: {limit}")
    redis_server = await redis_pid(args.redis_url)
    with tempfile.TemporaryDirectory(prefix="tavkit-scaling-") as workdir:
        return [await hold(n, key, args, redis_server, Path(workdir)) for n in (1, 2)]


def scaling_report(runs: list[Held], args: argparse.Namespace) -> str:
    """The Markdown section for RESULTS.md."""
    one, two = runs
    lines = [
        "## Cluster scaling: heartbeating members held by 1 and by 2 replicas",
        "",
        f"Measured {stamp()} by `bench/cluster.py --scaling` on {machine()}. The load "
        f"generator (`tavkit.loadtest`, in the bench process) ramps {args.members} members "
        f"into rooms of six at {args.ramp:g}/s through HAProxy (`docs/deploy/haproxy.cfg`, "
        "`leastconn`) and holds them with `ping` frames at the default interval (5 s) for "
        f"{args.hold:g} s; behind it 1, then 2, `tavkit serve` replicas on PostgreSQL and "
        "Redis (same settings, rate limits off since one address stands for all). Each "
        "replica's CPU from /proc while holding, and idle for 4 s before the ramp. "
        "Everything shares the 2 cores.",
        "",
        "| replicas | sockets held | CPU per replica holding (idle) | all replicas per "
        "1000 members | same, idle set aside | redis-server | members per replica within "
        f"{BUDGET:g} % of a core |",
        "| --- | ---: | ---: | ---: | ---: | ---: | ---: |",
    ]
    for run in runs:
        shares = " + ".join(
            f"{share:.1f} % ({idle:.1f} %)"
            for share, idle in zip(run.shares, run.idle, strict=True)
        )
        lines.append(
            f"| {run.replicas} | {run.sockets} / {args.members} | {shares} "
            f"| {run.per_1000():.1f} % | {run.marginal_per_1000():.1f} % "
            f"| {run.redis_share:.1f} % | {run.at_budget(BUDGET):.0f} |"
        )
    held_one, held_two = one.at_budget(BUDGET), 2 * two.at_budget(BUDGET)
    lines += [
        f"| ratio 2 / 1 | | | {two.per_1000() / max(one.per_1000(), 1e-9):.2f} "
        f"| {two.marginal_per_1000() / max(one.marginal_per_1000(), 1e-9):.2f} | | |",
        "",
        f"Within {BUDGET:g} % of a core per replica (the rest of this machine goes to the "
        f"generator, PostgreSQL and Redis), one replica holds about {held_one:.0f} members "
        f"and two about {held_two:.0f} together (ratio {held_two / held_one:.2f}; 2.00 would "
        "be linear), counting each replica's idle CPU (sweeper, recording leases, bus) "
        "against its budget. With two, members of one room often sit on different "
        "replicas, so their room events cross Redis, which used "
        f"{two.redis_share:.1f} % of a core meanwhile.",
        "",
    ]
    for run in runs:
        if run.report is not None:
            beat, errors = run.report.latency["heartbeat"], run.report.errors
            problems = ", ".join(f"{k} x{v}" for k, v in sorted(errors.items())) or "none"
            verdict = "PASS" if run.report.consistency.passed else "FAIL"
            lines.append(
                f"{run.replicas} replica(s): heartbeat RTT p50 {beat.p50:.1f} ms, p95 "
                f"{beat.p95:.1f} ms; errors {problems}; consistency {verdict}.  "
            )
    return "\n".join(lines) + "\n"


# -- the run --------------------------------------------------------------------------------

Results = dict[Load, dict[str, Measured]]


async def run_all(args: argparse.Namespace) -> tuple[Results, dict[str, list[float]]]:
    key = secrets.token_hex(32)
    results: Results = {load: {name: Measured() for name in SETUPS} for load in args.loads}
    redis_server = await redis_pid(args.redis_url)
    cluster_schema = await create_schema(args.pg_url)
    single_schema = await create_schema(args.pg_url)
    try:
        with (
            tempfile.TemporaryDirectory(prefix="tavkit-cluster-") as cluster_data,
            tempfile.TemporaryDirectory(prefix="tavkit-single-") as single_data,
        ):
            one = replica(
                Path(cluster_data), key, args.pg_url, cluster_schema, "r1", args.redis_url, *PAIRS
            )
            two = replica(
                Path(cluster_data), key, args.pg_url, cluster_schema, "r2", args.redis_url, *PAIRS
            )
            alone = replica(
                Path(single_data), key, args.pg_url, single_schema, "solo", None, *PAIRS
            )
            # Started in this order: the first replica migrates the schema.
            with one, two, alone:
                await asyncio.sleep(1.0)
                room = 1000
                for load in args.loads:
                    print(f"{load}:")
                    for repeat in range(2):
                        for name in SETUPS:
                            if name == "cross":
                                urls, pids = (one.url, two.url), [one.pid, two.pid]
                            elif name == "same":
                                urls, pids = (one.url, one.url), [one.pid, two.pid]
                            else:
                                urls, pids = (alone.url, alone.url), [alone.pid]
                            await measure(
                                *urls,
                                key,
                                load,
                                args.seconds,
                                f"{name}{repeat}",
                                room,
                                pids,
                                None if name == "inproc" else redis_server,
                                results[load][name],
                            )
                            room += load.pairs
                            await asyncio.sleep(1.0)
        micro = await publish_to_receive(args.redis_url)
    finally:
        await drop_schema(args.pg_url, cluster_schema)
        await drop_schema(args.pg_url, single_schema)
    return results, micro


def table(load: Load, measured: dict[str, Measured]) -> list[str]:
    """One load's rows: each setup, then the ratios."""
    base, cross, same = measured["inproc"], measured["cross"], measured["same"]
    lines = [
        f"**{load.pairs} pairs, {load.rate:g} signals/s each "
        f"({load.pairs * load.rate:.0f} offered a second):**",
        "",
        "| setup | delivered msgs/s | p50 latency | p99 latency | server CPU per signal "
        "| of which Redis | errors |",
        "| --- | ---: | ---: | ---: | ---: | ---: | ---: |",
    ]
    for name in SETUPS:
        m = measured[name]
        redis_us = m.redis_cpu / max(m.received, 1) * 1e6
        lines.append(
            f"| {LABELS[name]} | {m.rate:.0f} | {m.ms(0.5):.2f} ms | {m.ms(0.99):.2f} ms "
            f"| {m.cpu_us():.0f} µs | {redis_us:.0f} µs | {m.errors} |"
        )
    for label, m, against in (
        ("cross-replica / same replica", cross, same),
        ("cross-replica / in-process", cross, base),
        ("same replica / in-process", same, base),
    ):
        lines.append(
            f"| ratio {label} | {m.rate / against.rate:.2f} "
            f"| {m.ms(0.5) / against.ms(0.5):.2f} | {m.ms(0.99) / against.ms(0.99):.2f} "
            f"| {m.cpu_us() / against.cpu_us():.2f} | | |"
        )
    lines += [
        "",
        f"Delivered: cross {cross.received}/{cross.sent}, same {same.received}/{same.sent}, "
        f"in-process {base.received}/{base.sent}. Redis adds "
        f"{(same.ms(0.5) - base.ms(0.5)) * 1000:.0f} µs to the median on one replica and "
        f"{(cross.ms(0.5) - base.ms(0.5)) * 1000:.0f} µs across two, and "
        f"{cross.cpu_us() - base.cpu_us():.0f} µs of server CPU per signal across two "
        "(Redis included).",
        "",
    ]
    return lines


def report(results: Results, micro: dict[str, list[float]], args: argparse.Namespace) -> str:
    """The Markdown section for RESULTS.md."""
    lines = [
        "## Cluster: signal relay across replicas, and the cost of Redis",
        "",
        f"Measured {stamp()} by `bench/cluster.py` on {machine()}. Loopback; PostgreSQL and "
        "Redis of the machine. Sender/receiver pairs (one room each) send `signal` frames "
        f"for {args.seconds:g} s, as in the relay section, at a light load (the path's "
        "latency) and at the relay section's load; the clients run in the bench process, "
        "each replica in its own (`tavkit serve` on PostgreSQL, rate limits off since one "
        "address stands for all). Setups: cross-replica (sender's socket on replica 1, "
        "receiver's on replica 2 of a two-replica cluster on Redis); same replica (both on "
        "replica 1 of that cluster: the event still goes through Redis, as every event on "
        "the Redis bus does); in-process bus (one replica without Redis, the baseline). The "
        "three alternate, twice each; both runs' latencies are pooled. Server CPU is the "
        "replicas' and redis-server's user+system time over the window (/proc) less their "
        "idle rate with the same sockets open, per delivered signal.",
        "",
    ]
    for load, measured in results.items():
        lines += table(load, measured)
    inproc_us = p(micro["inproc"], 0.5) * 1e6
    redis_us = p(micro["redis"], 0.5) * 1e6
    lines += [
        "The buses alone (one process, one subscriber, one event in flight, "
        f"{MICRO_ROUNDS} events after 100 of warm-up), publish -> receive:",
        "",
        "| bus | p50 | p99 |",
        "| --- | ---: | ---: |",
        f"| InProcessBus | {inproc_us:.0f} µs | {p(micro['inproc'], 0.99) * 1e6:.0f} µs |",
        f"| RedisBus | {redis_us:.0f} µs | {p(micro['redis'], 0.99) * 1e6:.0f} µs |",
        f"| ratio Redis / in-process | {redis_us / inproc_us:.1f} | "
        f"{p(micro['redis'], 0.99) / p(micro['inproc'], 0.99):.1f} |",
        "",
        "Everything (clients, replicas, PostgreSQL, Redis) shares the 2 cores, so under "
        "load the latencies mostly measure waiting for a core: on one replica the whole "
        "relay runs on one event loop, across two it is split over two processes.",
    ]
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument(
        "--loads",
        type=lambda text: [Load.parse(part) for part in text.split(",")],
        default=[Load(10, 20.0), Load(50, 45.0)],
        help="PAIRSxRATE,... (default 10x20,50x45)",
    )
    parser.add_argument("--seconds", type=float, default=8.0)
    parser.add_argument("--pg-url", default=PG_URL)
    parser.add_argument("--redis-url", default=REDIS_URL)
    parser.add_argument("--no-write", action="store_true", help="do not touch RESULTS.md")
    parser.add_argument(
        "--scaling", action="store_true", help="measure members held by 1 and 2 replicas"
    )
    parser.add_argument("--members", type=int, default=1200, help="with --scaling")
    parser.add_argument("--ramp", type=float, default=40.0, help="with --scaling: joins/s")
    parser.add_argument("--hold", type=float, default=25.0, help="with --scaling: seconds")
    args = parser.parse_args()
    if args.scaling:
        scaled = scaling_report(asyncio.run(scaling(args)), args)
        print()
        print(scaled)
        if not args.no_write:
            write_section("cluster_scaling", scaled)
            print(f"written to {RESULTS}")
        return
    results, micro = asyncio.run(run_all(args))
    section = report(results, micro, args)
    print()
    print(section)
    if not args.no_write:
        write_section("cluster", section)
        print(f"written to {RESULTS}")


if __name__ == "__main__":
    main()
