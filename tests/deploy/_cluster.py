"""The cluster harness: ``tavkit serve`` replicas on one PostgreSQL database and one Redis,
and Debian's HAProxy in front of them with ``docs/deploy/haproxy.cfg``.

Each replica is a real ``tavkit serve`` subprocess on its own port, with the machine's
PostgreSQL (a schema of the test's own) and Redis (a channel prefix of its own), and
one data directory between them, as replicas share the socket-token secret. Python
clients enter through different replicas, so everything one member does must cross
from one process to the other through Redis to reach the other member.
"""

from __future__ import annotations

import contextlib
import os
import secrets
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path
from urllib.parse import urlsplit

import httpx
import pytest

from tavkit.auth import gen_user_sig

APP_ID = 1400000001
APP_KEY = "clusterkey0123456789abcdef"
REDIS = "redis://127.0.0.1:6379/0"
START_TIMEOUT = 60.0

DEPLOY = Path(__file__).parents[2] / "docs" / "deploy"


class Replica:
    """One ``tavkit serve`` process of the cluster."""

    def __init__(
        self, name: str, env: dict[str, str], data_dir: Path, log: Path, *extra: str
    ) -> None:
        argv = [sys.executable, "-m", "tavkit", "serve", "--host", "127.0.0.1", "--port", "0"]
        argv += ["--data-dir", str(data_dir), "--log-level", "info", "--replica-name", name]
        argv += extra
        self.name = name
        self.log = log
        with log.open("w") as out:
            self.process = subprocess.Popen(argv, env=env, stdout=out, stderr=out, text=True)
        self.url = self._wait_for_url()

    def _wait_for_url(self) -> str:
        deadline = time.monotonic() + START_TIMEOUT
        while time.monotonic() < deadline:
            logged = self.log.read_text(errors="replace")
            if "tavkit serving on " in logged:
                return logged.split("tavkit serving on ", 1)[1].split()[0]
            assert self.process.poll() is None, f"{self.name} exited:\n{logged}"
            time.sleep(0.1)
        pytest.fail(f"{self.name} did not start within {START_TIMEOUT} s")

    def stop(self, sig: int = signal.SIGTERM) -> int | None:
        """Signal the process and wait for it (killed if it lingers); its exit code."""
        if self.process.poll() is None:
            self.process.send_signal(sig)
            try:
                self.process.wait(30)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(10)
        return self.process.returncode


class Cluster:
    """Replicas sharing a schema, a Redis prefix and a data directory."""

    def __init__(self, workdir: Path, database_url: str, schema: str) -> None:
        self.workdir = workdir
        self.env = {
            **{k: v for k, v in os.environ.items() if not k.startswith("TAVKIT_")},
            "TAVKIT_APPS": f"{APP_ID}:{APP_KEY}",
            "TAVKIT_DATABASE_URL": database_url,
            "TAVKIT_DATABASE_SCHEMA": schema,
            "TAVKIT_REDIS_URL": REDIS,
            "TAVKIT_REDIS_PREFIX": f"tavkit-test-{secrets.token_hex(4)}:",
            "TAVKIT_ICE_ALLOWED_NETWORKS": "127.0.0.0/8",
            "TAVKIT_HEARTBEAT_INTERVAL": "1",
            "TAVKIT_HEARTBEAT_TIMEOUT": "6",
        }
        self.replicas: list[Replica] = []

    def start(self, count: int, *extra: str) -> list[Replica]:
        """Start ``count`` more replicas, one after the other (the first migrates), with
        ``extra`` ``tavkit serve`` options; every replica started so far."""
        for _ in range(count):
            n = len(self.replicas)
            log = self.workdir / f"replica-{n}.log"
            replica = Replica(f"replica-{n}", self.env, self.workdir / "data", log, *extra)
            self.replicas.append(replica)
        return self.replicas

    def sig(self, user_id: str) -> str:
        """A valid userSig for ``user_id``."""
        return gen_user_sig(APP_ID, APP_KEY, user_id, 3600)

    def close(self) -> None:
        """Stop every replica still running."""
        for replica in self.replicas:
            replica.stop(signal.SIGKILL)


class ClusterApp:
    """What ``client._util.enter`` needs of a server: the app and its userSigs (pass
    ``ClusterApp(cluster)`` where a test helper expects a running server)."""

    def __init__(self, cluster: Cluster) -> None:
        self.app_id = APP_ID
        self.sig = cluster.sig


class HAProxy:
    """Debian's haproxy with ``docs/deploy/haproxy.cfg`` in front of the replicas."""

    def __init__(self, workdir: Path, replicas: list[Replica], backups: int = 0) -> None:
        """Balance over ``replicas``; the last ``backups`` of them only take over when
        every other one is down (so a test knows where a connection lands)."""
        with socket.socket() as probe:  # a free port for HAProxy to listen on
            probe.bind(("127.0.0.1", 0))
            port = probe.getsockname()[1]
        servers = "\n".join(
            f"    server {r.name} {urlsplit(r.url).netloc} check"
            + (" backup" if n >= len(replicas) - backups else "")
            for n, r in enumerate(replicas)
        )
        config = (DEPLOY / "haproxy.cfg").read_text()
        config = config.replace("@LISTEN@", f"127.0.0.1:{port}").replace("@SERVERS@", servers)
        path = workdir / "haproxy.cfg"
        path.write_text(config)
        checked = subprocess.run(["haproxy", "-c", "-f", str(path)], capture_output=True, text=True)
        assert checked.returncode == 0, checked.stdout + checked.stderr
        self.log = workdir / "haproxy.log"
        with self.log.open("w") as out:
            self.process = subprocess.Popen(
                ["haproxy", "-db", "-f", str(path)], stdout=out, stderr=out
            )
        self.url = f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + START_TIMEOUT
        while time.monotonic() < deadline:  # up once every replica passes its check
            with contextlib.suppress(httpx.HTTPError):
                if httpx.get(f"{self.url}/healthz", timeout=2).status_code == 200:
                    return
            assert self.process.poll() is None, self.log.read_text()
            time.sleep(0.2)
        pytest.fail(f"haproxy did not serve within {START_TIMEOUT} s:\n{self.log.read_text()}")

    def close(self) -> None:
        """Stop HAProxy."""
        self.process.terminate()
        try:
            self.process.wait(10)
        except subprocess.TimeoutExpired:
            self.process.kill()
