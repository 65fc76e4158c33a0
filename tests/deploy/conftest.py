"""Fixtures of the deployment tests: the cluster of replicas (see :mod:`deploy._cluster`)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from ._cluster import Cluster


@pytest.fixture
def cluster(database: Any, tmp_path: Path) -> Iterator[Cluster]:
    """An empty cluster on a fresh PostgreSQL schema and a Redis prefix of its own
    (a test asks for PostgreSQL with ``parametrize("database", ["postgres"], indirect=True)``)."""
    cluster = Cluster(tmp_path, database.url, database.schema)
    try:
        yield cluster
    finally:
        cluster.close()
