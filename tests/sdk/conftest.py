"""Fixtures of the SDK tests that need a running server (`live_server`,
`queued_server`) or a copy of the example discount project (`discount_project`)."""

from __future__ import annotations

import shutil
import sys
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent))  # live_server.py, for the tests to import

from live_server import EXAMPLES, LiveServer, free_port, serve

from cartwheel.settings import Settings


@pytest.fixture
def live_server(migrated_pg_url: str, tmp_path: Path) -> Iterator[LiveServer]:
    """The app on PostgreSQL without Redis: deploys are prepared inline (READY at once)."""
    with serve(Settings(database_url=migrated_pg_url, data_dir=tmp_path / "server")) as live:
        yield live


@pytest.fixture
def queued_server(migrated_pg_url: str, redis_url: str, tmp_path: Path) -> Iterator[LiveServer]:
    """The app on PostgreSQL with Redis and no worker: new versions stay PENDING."""
    settings = Settings(
        database_url=migrated_pg_url, redis_url=redis_url, data_dir=tmp_path / "server"
    )
    with serve(settings) as live:
        yield live


@pytest.fixture
def discount_project(tmp_path: Path) -> Path:
    """A copy of examples/discount-function (prebuilt module, no build artifacts)."""
    dest = tmp_path / "discount-function"
    shutil.copytree(
        EXAMPLES / "discount-function",
        dest,
        ignore=shutil.ignore_patterns("target", ".cargo"),
    )
    return dest


@pytest.fixture
def unused_url() -> Callable[[], str]:
    """A loopback URL where nothing listens."""
    return lambda: f"http://127.0.0.1:{free_port()}"
