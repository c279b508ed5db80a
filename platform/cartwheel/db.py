"""Engines, sessions and migrations: one code path for SQLite and PostgreSQL.

SQLite (the embedded default) gets the pragmas a server needs: WAL so readers never
wait for the writer, enforced foreign keys, a busy timeout instead of instant
"database is locked", and real transactions (pysqlite's own BEGIN handling is replaced by
an explicit BEGIN so that SAVEPOINTs and the transaction boundaries SQLAlchemy asks for
are the ones that happen). PostgreSQL (production) gets a connection pool whose JSON
columns decode with orjson.

Dead connections are handled optimistically, not with a ping before every checkout
(``pool_pre_ping``: a round trip per request, ≈ 10 % of a checkout's database work):
the first statement that meets a connection the server dropped fails with
``connection_invalidated``, and SQLAlchemy then discards every connection of the pool
opened before it. Request paths run such work again once on a fresh connection
(`retry_on_dropped_connection`: the storefront, the admin API's authentication, the
health check).
"""

from __future__ import annotations

import sqlite3
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, TypeVar

import orjson
import sqlalchemy as sa
from sqlalchemy import event
from sqlalchemy.engine import URL, Connection, Engine, make_url
from sqlalchemy.orm import Session, sessionmaker

from cartwheel.errors import DatabaseNotReadyError
from cartwheel.settings import Settings

T = TypeVar("T")

SQLITE_BUSY_TIMEOUT_MS = 5_000
"""How long a SQLite writer waits for the lock before failing with "database is locked"."""

POOL_SIZE = 10
"""PostgreSQL connections kept per process."""

POOL_MAX_OVERFLOW = 10
"""Extra PostgreSQL connections opened under a burst, closed when returned."""

MIGRATIONS_DIR = Path(__file__).resolve().parent / "migrations"
"""The Alembic script directory, shipped inside the package (an installed wheel can
migrate its database: `cartwheel db upgrade`)."""


def is_sqlite(url: str | URL) -> bool:
    """Whether `url` names a SQLite database."""
    return make_url(url).get_backend_name() == "sqlite"


def make_engine(settings: Settings, **kwargs: Any) -> Engine:
    """The engine for `settings.database_url`.

    For a SQLite file the parent directory is created. Extra keyword arguments go to
    `sqlalchemy.create_engine` (tests pass `poolclass`, for example).
    """
    url = make_url(settings.database_url)
    if is_sqlite(url):
        return _sqlite_engine(url, **kwargs)
    # The stdlib json decoded every JSON column (line attributes, tags, scopes): ≈ 0.3 ms
    # of a 20-line checkout; orjson parses the same documents (PostgreSQL never holds
    # the NaN / Infinity the stdlib would also accept).
    options: dict[str, Any] = {"json_deserializer": orjson.loads}
    if "poolclass" not in kwargs:
        options.update(pool_size=POOL_SIZE, max_overflow=POOL_MAX_OVERFLOW)
    options.update(kwargs)
    return sa.create_engine(url, **options)


def _sqlite_engine(url: URL, **kwargs: Any) -> Engine:
    if url.database and url.database != ":memory:" and not url.database.startswith("file:"):
        Path(url.database).parent.mkdir(parents=True, exist_ok=True)
    engine = sa.create_engine(url, **kwargs)

    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_connection: sqlite3.Connection, _record: object) -> None:
        # Let SQLAlchemy, not pysqlite, decide where transactions begin (see below).
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        try:
            cursor.execute("PRAGMA journal_mode=WAL")
            cursor.execute("PRAGMA foreign_keys=ON")
            cursor.execute("PRAGMA synchronous=NORMAL")
            cursor.execute(f"PRAGMA busy_timeout={SQLITE_BUSY_TIMEOUT_MS}")
        finally:
            cursor.close()

    @event.listens_for(engine, "begin")
    def _on_begin(connection: Connection) -> None:
        connection.exec_driver_sql("BEGIN")

    return engine


def session_factory(engine: Engine | Connection, **options: Any) -> sessionmaker[Session]:
    """Sessions bound to `engine` (or to one connection, in tests); `options` go to
    `sessionmaker`.

    Objects stay usable after commit (no expiry), since request handlers serialize them
    after committing. The sessions refuse ORM queries on shop data that bypass
    `cartwheel.tenancy.ShopScope` (`UnscopedQueryError`).
    """
    from cartwheel.tenancy import guard_sessions

    options.setdefault("expire_on_commit", False)
    return guard_sessions(sessionmaker(bind=engine, **options))


def autocommit_session_factory(engine: Engine) -> sessionmaker[Session]:
    """Sessions for requests that only read (a checkout, which writes at most a token's
    last use): on PostgreSQL each statement commits by itself, which saves the BEGIN and
    COMMIT round trips of a transaction. Reads see what is committed when each
    statement starts, as they do in a READ COMMITTED transaction. SQLite keeps its
    transactions (no round trips to save)."""
    if is_sqlite(engine.url):
        return session_factory(engine)
    return session_factory(engine.execution_options(isolation_level="AUTOCOMMIT"))


def retry_on_dropped_connection(
    run: Callable[[], T],
    *,
    first_statement: Callable[[], bool] = lambda: True,
    reset: Callable[[], None] = lambda: None,
) -> T:
    """`run()`, and once more if it failed on a pooled connection the database had dropped
    while it sat idle (`connection_invalidated`; SQLAlchemy has then discarded the pool's
    older connections, so the second try gets a fresh one).

    Only a failure of `run`'s first statement is retried (nothing ran before it):
    `first_statement()` answers that after the failure. `reset()` runs before the second
    try (close the session that held the dead connection). Any other error, or a second
    failure, propagates.
    """
    try:
        return run()
    except sa.exc.DBAPIError as exc:
        if not exc.connection_invalidated or not first_statement():
            raise
    reset()
    return run()


@contextmanager
def transaction(factory: sessionmaker[Session]) -> Iterator[Session]:
    """A session in a transaction: committed when the block ends, rolled back if it raises."""
    with factory() as session, session.begin():
        yield session


def alembic_config(database_url: str | None = None, *, connection: Connection | None = None) -> Any:
    """The Alembic configuration for this project.

    `connection` (preferred by tests) or `database_url` overrides the URL that
    `cartwheel/migrations/env.py` would otherwise read from the environment through `Settings`.
    """
    from alembic.config import Config

    if not MIGRATIONS_DIR.is_dir():
        raise DatabaseNotReadyError(
            f"The migrations directory {MIGRATIONS_DIR} is missing: this installation of "
            "Cartwheel is incomplete; reinstall the package."
        )
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS_DIR))
    if database_url is not None:
        # ConfigParser interpolation: a literal % must be doubled.
        config.set_main_option("sqlalchemy.url", database_url.replace("%", "%%"))
    if connection is not None:
        config.attributes["connection"] = connection
    return config


def upgrade(database_url: str, revision: str = "head") -> None:
    """Migrate the database at `database_url` to `revision` (Alembic `upgrade`)."""
    from alembic import command

    command.upgrade(alembic_config(database_url), revision)


def current_revision(engine: Engine) -> str | None:
    """The Alembic revision the database is at, or None for an empty database."""
    from alembic.runtime.migration import MigrationContext

    with engine.connect() as conn:
        return MigrationContext.configure(conn).get_current_revision()


def head_revision() -> str | None:
    """The newest revision in `cartwheel/migrations/`."""
    from alembic.script import ScriptDirectory

    return ScriptDirectory.from_config(alembic_config()).get_current_head()
