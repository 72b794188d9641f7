"""Fixtures for the lockout and shared-state tests: a real redis-server, and `totpd serve`
processes that are stopped whatever happens.

Test modules load this with `pytest_plugins = ["tests.lockout_fixtures"]`.
"""

import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.lockout_support import RedisServer, Replica


@pytest.fixture
def redis_server(tmp_path: Path) -> Iterator[RedisServer]:
    """A running redis-server for one test (scripts/setup installs it)."""
    if shutil.which("redis-server") is None:
        pytest.fail("redis-server is not installed: run scripts/setup")
    server = RedisServer(tmp_path / "redis")
    server.start()
    yield server
    server.stop()


@pytest.fixture
def replicas(tmp_path: Path) -> Iterator[list[Replica]]:
    """A list to add Replica objects to; every one still running is stopped at the end."""
    started: list[Replica] = []
    yield started
    for replica in started:
        replica.stop()
