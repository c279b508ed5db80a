"""Alembic environment: the database comes from `Settings`, the schema from `cartwheel.models`.

URL precedence: a connection passed by the caller (`config.attributes["connection"]`,
used by tests), then `sqlalchemy.url` set on the config (`cartwheel db upgrade`), then
`Settings.from_env().database_url` (plain `alembic upgrade head`).

SQLite runs in batch mode (table copy-and-move, since it cannot ALTER constraints) with
foreign keys switched off for the duration, as SQLite's documentation prescribes for
schema changes, and checked with `PRAGMA foreign_key_check` afterwards.
"""

from __future__ import annotations

import logging.config

from alembic import context
from sqlalchemy.engine import Connection
from sqlalchemy.pool import NullPool

from cartwheel.db import is_sqlite, make_engine
from cartwheel.models import Base
from cartwheel.settings import Settings

config = context.config
if config.config_file_name is not None and config.get_section("loggers") is not None:
    logging.config.fileConfig(config.config_file_name, disable_existing_loggers=False)

target_metadata = Base.metadata


def _database_url() -> str:
    return config.get_main_option("sqlalchemy.url") or Settings.from_env().database_url


def _configure(connection: Connection) -> None:
    context.configure(
        connection=connection,
        target_metadata=target_metadata,
        render_as_batch=connection.dialect.name == "sqlite",
        compare_type=True,
    )


def _migrate(connection: Connection) -> None:
    sqlite = connection.dialect.name == "sqlite"
    if sqlite:
        # PRAGMA foreign_keys is a no-op inside a transaction: set it on the raw connection.
        connection.connection.driver_connection.execute("PRAGMA foreign_keys=OFF")  # type: ignore[union-attr]
    try:
        _configure(connection)
        with context.begin_transaction():
            context.run_migrations()
            if sqlite:
                broken = connection.exec_driver_sql("PRAGMA foreign_key_check").fetchall()
                if broken:
                    raise RuntimeError(f"migration left dangling foreign keys: {broken}")
    finally:
        if sqlite:
            connection.connection.driver_connection.execute("PRAGMA foreign_keys=ON")  # type: ignore[union-attr]


def run_migrations_offline() -> None:
    """Emit SQL to stdout instead of running it (`alembic upgrade head --sql`)."""
    url = _database_url()
    context.configure(
        url=url,
        target_metadata=target_metadata,
        literal_binds=True,
        render_as_batch=is_sqlite(url),
        dialect_opts={"paramstyle": "named"},
    )
    with context.begin_transaction():
        context.run_migrations()


def run_migrations_online() -> None:
    connection = config.attributes.get("connection")
    if isinstance(connection, Connection):
        _migrate(connection)
        return
    engine = make_engine(Settings(database_url=_database_url()), poolclass=NullPool)
    try:
        with engine.connect() as conn:
            _migrate(conn)
            if conn.in_transaction():
                conn.commit()
    finally:
        engine.dispose()


if context.is_offline_mode():
    run_migrations_offline()
else:
    run_migrations_online()
