"""The app's error handling for a database outage, through the real ASGI stack and on
real PostgreSQL errors (a refused connection, a cancelled statement, a syntax error)."""

from __future__ import annotations

import gc
import socket
import time
from collections.abc import Callable
from pathlib import Path

import pytest
import sqlalchemy as sa

from cartwheel.api.testclient import AppClient
from cartwheel.app import create_app, is_database_unavailable
from cartwheel.settings import Settings


def closed_loopback_port() -> int:
    """A loopback port nothing listens on (bound, then released)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
    return port


def _error_from(url: str, statement: str) -> sa.exc.DBAPIError:
    engine = sa.create_engine(url)
    try:
        with engine.connect() as conn:
            conn.execute(sa.text(statement))
    except sa.exc.DBAPIError as exc:
        return exc
    finally:
        engine.dispose()
    raise AssertionError(f"{statement!r} did not fail")


def test_refused_connection_is_an_outage_statement_errors_are_not(pg_url: str) -> None:
    refused = f"postgresql+psycopg://postgres@127.0.0.1:{closed_loopback_port()}/x"
    assert is_database_unavailable(_error_from(refused, "SELECT 1"))
    # A cancelled statement is an OperationalError too, but not an outage.
    cancelled = _error_from(pg_url, "SET statement_timeout = 1; SELECT pg_sleep(1)")
    assert isinstance(cancelled, sa.exc.OperationalError)
    assert not is_database_unavailable(cancelled)
    assert not is_database_unavailable(_error_from(pg_url, "SELEC 1"))
    assert not is_database_unavailable(ValueError("not a database error"))


@pytest.mark.parametrize("path", ["/storefront/carts/1/checkout", "/storefront/carts"])
def test_storefront_answers_database_unavailable_fast_when_the_database_is_down(
    tmp_path: Path, path: str
) -> None:
    url = (
        f"postgresql+psycopg://postgres@127.0.0.1:{closed_loopback_port()}/cartwheel"
        "?connect_timeout=3"
    )
    settings = Settings(database_url=url, data_dir=tmp_path)
    with AppClient(create_app(settings)) as client:
        started = time.monotonic()
        response = client.post(
            path, content=b"{}", headers={"Authorization": "Bearer cwt_unchecked"}
        )
        elapsed = time.monotonic() - started
    assert response.status_code == 503
    assert response.headers["Retry-After"] == "1"
    error = response.json()["error"]
    assert error["code"] == "DATABASE_UNAVAILABLE"
    assert "Retry" in error["message"]
    assert elapsed < 2.0


def test_startup_objects_are_frozen_while_the_app_runs(
    migrated_pg_url: str, tmp_path: Path
) -> None:
    assert gc.get_freeze_count() == 0
    settings = Settings(database_url=migrated_pg_url, data_dir=tmp_path)
    with AppClient(create_app(settings)) as client:
        assert client.get("/healthz").status_code == 200
        # The schema, the registry and every module: out of the collector's full passes.
        assert gc.get_freeze_count() > 50_000
    assert gc.get_freeze_count() == 0


def test_health_check_is_not_fooled_by_a_connection_the_database_dropped(
    migrated_pg_url: str, tmp_path: Path, drop_connections: Callable[[str], int]
) -> None:
    url = migrated_pg_url + "?application_name=health-dropped"
    with AppClient(create_app(Settings(database_url=url, data_dir=tmp_path))) as client:
        assert client.get("/healthz").status_code == 200
        assert drop_connections("health-dropped") >= 1
        again = client.get("/healthz")
        assert again.status_code == 200, again.text
        assert again.json()["checks"] == {"database": "ok"}
