"""Engines and sessions: SQLite gets the pragmas a server needs and real transactions;
PostgreSQL a checked pool; both guard against unscoped queries."""

from __future__ import annotations

import threading
from pathlib import Path

import pytest
import sqlalchemy as sa
from sqlalchemy.orm import Session

from cartwheel.db import (
    SQLITE_BUSY_TIMEOUT_MS,
    current_revision,
    head_revision,
    is_sqlite,
    make_engine,
    session_factory,
    transaction,
    upgrade,
)
from cartwheel.models import Product
from cartwheel.settings import Settings
from cartwheel.tenancy import ShopScope, UnscopedQueryError, create_shop


@pytest.fixture
def sqlite_file_url(tmp_path: Path) -> str:
    url = f"sqlite:///{tmp_path / 'nested' / 'dir' / 'cartwheel.db'}"
    upgrade(url)
    return url


@pytest.mark.sqlite
def test_sqlite_pragmas(sqlite_file_url: str) -> None:
    engine = make_engine(Settings(database_url=sqlite_file_url))
    try:
        with engine.connect() as conn:
            assert conn.exec_driver_sql("PRAGMA journal_mode").scalar() == "wal"
            assert conn.exec_driver_sql("PRAGMA foreign_keys").scalar() == 1
            assert conn.exec_driver_sql("PRAGMA busy_timeout").scalar() == SQLITE_BUSY_TIMEOUT_MS
    finally:
        engine.dispose()


@pytest.mark.sqlite
def test_sqlite_default_lives_in_the_data_dir(tmp_path: Path) -> None:
    settings = Settings(data_dir=tmp_path / "data")
    assert is_sqlite(settings.database_url)
    upgrade(settings.database_url)
    assert (tmp_path / "data" / "cartwheel.db").exists()
    engine = make_engine(settings)
    try:
        assert current_revision(engine) == head_revision()
    finally:
        engine.dispose()


@pytest.mark.sqlite
def test_sqlite_transactions_and_savepoints_are_real(sqlite_file_url: str) -> None:
    engine = make_engine(Settings(database_url=sqlite_file_url))
    factory = session_factory(engine)
    try:
        with transaction(factory) as session:
            shop = create_shop(session, handle="tx", name="Tx")
            scope = ShopScope(session, shop.id)
            scope.create(Product, handle="kept", title="Kept")
            nested = session.begin_nested()
            scope.create(Product, handle="dropped", title="Dropped")
            nested.rollback()

        def aborted() -> None:
            with transaction(factory) as session:
                ShopScope(session, shop.id).create(Product, handle="aborted", title="Aborted")
                raise RuntimeError("abort the block")

        with pytest.raises(RuntimeError):
            aborted()
        with factory() as session:
            handles = [p.handle for p in ShopScope(session, shop.id).list(Product)]
        assert handles == ["kept"]
    finally:
        engine.dispose()


@pytest.mark.sqlite
def test_sqlite_concurrent_writers_wait_instead_of_failing(sqlite_file_url: str) -> None:
    engine = make_engine(Settings(database_url=sqlite_file_url))
    factory = session_factory(engine)
    with transaction(factory) as session:
        shop_id = create_shop(session, handle="busy", name="Busy").id
    errors: list[BaseException] = []

    def write(n: int) -> None:
        try:
            for i in range(10):
                with transaction(factory) as session:
                    ShopScope(session, shop_id).create(Product, handle=f"w{n}-{i}", title="W")
        except BaseException as exc:  # collected and asserted below
            errors.append(exc)

    threads = [threading.Thread(target=write, args=(n,)) for n in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    try:
        assert errors == []
        with factory() as session:
            assert ShopScope(session, shop_id).count(Product) == 40
    finally:
        engine.dispose()


def test_postgresql_engine(pg_engine: sa.Engine) -> None:
    assert pg_engine.dialect.name == "postgresql"
    assert not is_sqlite(pg_engine.url)
    assert pg_engine.pool.size() == 10  # type: ignore[attr-defined]
    assert current_revision(pg_engine) == head_revision()


def test_sessions_refuse_unscoped_queries(db_session: Session) -> None:
    with pytest.raises(UnscopedQueryError):
        db_session.scalars(sa.select(Product)).all()
    # plain SQL and tables that are not shop data are not ORM queries on shop data
    assert db_session.execute(sa.text("SELECT 1")).scalar_one() == 1
