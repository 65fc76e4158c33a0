"""Fixtures of the deployment tests: the cluster of replicas (see :mod:`deploy._cluster`)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from ._cluster import Cluster

LOG_TAIL = 120


@pytest.fixture
def cluster(database: Any, tmp_path: Path) -> Iterator[Cluster]:
    """An empty cluster on a fresh PostgreSQL schema and a Redis prefix of its own
    (a test asks for PostgreSQL with ``parametrize("database", ["postgres"], indirect=True)``)."""
    cluster = Cluster(tmp_path, database.url, database.schema)
    try:
        yield cluster
    finally:
        cluster.close()
        # pytest shows what a test printed only when it fails: there, the replicas' own
        # account of it (the CI log keeps no temporary directory).
        for replica in cluster.replicas:
            lines = [
                line
                for line in replica.log.read_text(errors="replace").splitlines()
                if "/healthz" not in line
            ]
            print(f"--- {replica.name}, last {min(len(lines), LOG_TAIL)} lines ---")
            print("\n".join(lines[-LOG_TAIL:]))
