"""Shared fixtures: real PostgreSQL and real Redis, isolated per test session.

Each pytest session creates its own PostgreSQL database (dropped at the end) and takes
its own Redis logical database (flushed before and after every test that uses it), so
several sessions can run side by side on one machine. When a service is down the
fixtures fail loudly with the command that starts it; nothing is skipped.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent

PG_ADMIN_URL = os.environ.get(
    "CARTWHEEL_TEST_PG_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/test"
)
REDIS_URL = os.environ.get("CARTWHEEL_TEST_REDIS_URL", "redis://127.0.0.1:6379")

PG_START = "pg_ctlcluster --skip-systemctl-redirect $(ls /etc/postgresql) main start"
REDIS_START = 'redis-server --daemonize yes --bind 127.0.0.1 --port 6379 --save "" --appendonly no'


def _pg_admin_engine():  # type: ignore[no-untyped-def]
    import sqlalchemy as sa

    return sa.create_engine(PG_ADMIN_URL, isolation_level="AUTOCOMMIT", pool_pre_ping=True)


@pytest.fixture(scope="session")
def pg_url() -> Iterator[str]:
    """A fresh, empty PostgreSQL database for this test session."""
    import sqlalchemy as sa

    admin = _pg_admin_engine()
    name = f"cw_test_{uuid.uuid4().hex[:12]}"
    try:
        with admin.connect() as conn:
            conn.execute(sa.text(f'CREATE DATABASE "{name}"'))
    except sa.exc.OperationalError as exc:
        pytest.fail(
            f"PostgreSQL is not reachable at {PG_ADMIN_URL} ({exc.orig}).\n"
            f"Start it with: {PG_START}",
            pytrace=False,
        )
    url = PG_ADMIN_URL.rsplit("/", 1)[0] + f"/{name}"
    try:
        yield url
    finally:
        with admin.connect() as conn:
            conn.execute(sa.text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()


def _claim_redis_db() -> int:
    """Claim a Redis logical database (1..15) for this session with a lease in db 0."""
    import redis

    client = redis.Redis.from_url(REDIS_URL + "/0")
    try:
        client.ping()
    except redis.exceptions.ConnectionError as exc:
        pytest.fail(
            f"Redis is not reachable at {REDIS_URL} ({exc}).\nStart it with: {REDIS_START}",
            pytrace=False,
        )
    token = uuid.uuid4().hex
    for n in range(1, 16):
        if client.set(f"cartwheel:test-lease:{n}", token, nx=True, ex=3600):
            return n
    pytest.fail("No free Redis logical database for this test session (1..15 leased).")


@pytest.fixture(scope="session")
def redis_session_url() -> Iterator[str]:
    import redis

    n = _claim_redis_db()
    try:
        yield f"{REDIS_URL}/{n}"
    finally:
        redis.Redis.from_url(REDIS_URL + "/0").delete(f"cartwheel:test-lease:{n}")


@pytest.fixture
def redis_url(redis_session_url: str) -> Iterator[str]:
    """A Redis URL on this session's own logical database, flushed before and after."""
    import redis

    client = redis.Redis.from_url(redis_session_url)
    client.flushdb()
    try:
        yield redis_session_url
    finally:
        client.flushdb()
        client.close()


# --- database fixtures (cartwheel.db / cartwheel.models) -----------------------------------
#
# `pg_engine` / `sqlite_engine`: one database per test session, migrated to head with
# Alembic (the real migrations, not `create_all`). `db_session` / `sqlite_session`: a
# session inside a transaction that is rolled back after the test (commits inside the
# test become savepoints), so tests never see each other's rows. `any_db_session` runs a
# test on both backends. `migrated_pg_url`: for code that opens its own engine (the app,
# the CLI); every table is truncated after the test.


def _migrated_engine(url: str):  # type: ignore[no-untyped-def]
    from cartwheel.db import make_engine, upgrade
    from cartwheel.settings import Settings

    upgrade(url)
    return make_engine(Settings(database_url=url))


@pytest.fixture(scope="session")
def pg_engine(pg_url: str) -> Iterator[object]:
    """An engine on this session's PostgreSQL database, migrated to head."""
    engine = _migrated_engine(pg_url)
    try:
        yield engine
    finally:
        engine.dispose()


@pytest.fixture(scope="session")
def sqlite_engine(tmp_path_factory: pytest.TempPathFactory) -> Iterator[object]:
    """An engine on a SQLite file (the embedded default), migrated to head."""
    path = tmp_path_factory.mktemp("sqlite") / "cartwheel.db"
    engine = _migrated_engine(f"sqlite:///{path}")
    try:
        yield engine
    finally:
        engine.dispose()


def _rolled_back_session(engine):  # type: ignore[no-untyped-def]
    from cartwheel.db import session_factory

    connection = engine.connect()
    outer = connection.begin()
    factory = session_factory(connection, join_transaction_mode="create_savepoint")
    session = factory()
    try:
        yield session
    finally:
        session.close()
        outer.rollback()
        connection.close()


@pytest.fixture
def db_session(pg_engine):  # type: ignore[no-untyped-def]
    """A PostgreSQL session whose work is rolled back after the test."""
    yield from _rolled_back_session(pg_engine)


@pytest.fixture
def sqlite_session(sqlite_engine):  # type: ignore[no-untyped-def]
    """A SQLite session whose work is rolled back after the test."""
    yield from _rolled_back_session(sqlite_engine)


@pytest.fixture(params=["postgresql", pytest.param("sqlite", marks=pytest.mark.sqlite)])
def any_db_session(request: pytest.FixtureRequest):  # type: ignore[no-untyped-def]
    """The test runs twice: on PostgreSQL and on SQLite."""
    engine = request.getfixturevalue(
        "pg_engine" if request.param == "postgresql" else "sqlite_engine"
    )
    yield from _rolled_back_session(engine)


@pytest.fixture
def migrated_pg_url(pg_engine) -> Iterator[str]:  # type: ignore[no-untyped-def]
    """This session's PostgreSQL URL, schema at head; all tables emptied after the test."""
    import sqlalchemy as sa

    from cartwheel.models import Base

    try:
        yield pg_engine.url.render_as_string(hide_password=False)
    finally:
        tables = ", ".join(f'"{t.name}"' for t in Base.metadata.sorted_tables)
        with pg_engine.begin() as conn:
            conn.execute(sa.text(f"TRUNCATE {tables} RESTART IDENTITY CASCADE"))


@pytest.fixture
def drop_connections(pg_url: str) -> Iterator[Callable[[str], int]]:
    """A function that terminates PostgreSQL's backends of every connection opened with
    a given `application_name` (put it in the app's database URL), as a database restart
    does to a pool's idle connections. It returns how many it terminated."""
    import sqlalchemy as sa
    from sqlalchemy.pool import NullPool

    engine = sa.create_engine(pg_url, poolclass=NullPool)

    def drop(application_name: str) -> int:
        with engine.connect() as conn:
            terminated: int = conn.execute(
                sa.text(
                    "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity "
                    "WHERE application_name = :name"
                ),
                {"name": application_name},
            ).scalar_one()
        return terminated

    yield drop
    engine.dispose()
