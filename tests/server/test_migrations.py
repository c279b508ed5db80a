"""Alembic migrations: upgrade an empty database to head on PostgreSQL and SQLite, and
prove the migrations match the models exactly (autogenerate finds nothing to do)."""

from __future__ import annotations

import subprocess
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
import sqlalchemy as sa
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext

from cartwheel.db import current_revision, head_revision, make_engine, upgrade
from cartwheel.models import Base
from cartwheel.settings import Settings

ROOT = Path(__file__).resolve().parents[2]
ALEMBIC = ROOT / ".venv" / "bin" / "alembic"


@pytest.fixture
def empty_pg_url(pg_url: str) -> Iterator[str]:
    """A second, empty PostgreSQL database (the session's own one is migrated by fixtures)."""
    admin = sa.create_engine(pg_url, isolation_level="AUTOCOMMIT")
    name = f"cw_mig_{uuid.uuid4().hex[:10]}"
    with admin.connect() as conn:
        conn.execute(sa.text(f'CREATE DATABASE "{name}"'))
    try:
        yield pg_url.rsplit("/", 1)[0] + f"/{name}"
    finally:
        with admin.connect() as conn:
            conn.execute(sa.text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()


def _diff(url: str) -> list[object]:
    engine = make_engine(Settings(database_url=url))
    try:
        with engine.connect() as conn:
            context = MigrationContext.configure(conn, opts={"compare_type": True})
            return list(compare_metadata(context, Base.metadata))
    finally:
        engine.dispose()


def _alembic_upgrade_head(url: str) -> None:
    """`alembic upgrade head` from the repository root, URL from the environment."""
    result = subprocess.run(
        [str(ALEMBIC), "upgrade", "head"],
        cwd=ROOT,
        env={"DATABASE_URL": url, "PATH": "/usr/bin:/bin"},
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert result.returncode == 0, result.stderr


def test_alembic_upgrade_head_on_empty_postgresql(empty_pg_url: str) -> None:
    _alembic_upgrade_head(empty_pg_url)
    engine = make_engine(Settings(database_url=empty_pg_url))
    try:
        assert current_revision(engine) == head_revision()
        tables = set(sa.inspect(engine).get_table_names())
    finally:
        engine.dispose()
    assert set(Base.metadata.tables) <= tables
    assert _diff(empty_pg_url) == []


@pytest.mark.sqlite
def test_alembic_upgrade_head_on_empty_sqlite(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'data' / 'cartwheel.db'}"
    # the parent directory does not exist yet: the engine factory creates it
    _alembic_upgrade_head(url)
    engine = make_engine(Settings(database_url=url))
    try:
        assert current_revision(engine) == head_revision()
        with engine.connect() as conn:
            assert conn.exec_driver_sql("PRAGMA foreign_key_check").fetchall() == []
            fks = conn.exec_driver_sql("PRAGMA foreign_key_list(functions)").fetchall()
    finally:
        engine.dispose()
    # the back edge functions.active_version_id -> function_versions.id, added last
    assert any(row[2] == "function_versions" and row[3] == "active_version_id" for row in fks)
    assert _diff(url) == []


def test_models_and_migrations_match_on_postgresql(pg_engine: sa.Engine) -> None:
    # pg_engine was migrated with cartwheel.db.upgrade; autogenerate must find nothing.
    assert _diff(pg_engine.url.render_as_string(hide_password=False)) == []


def test_downgrade_to_base_and_back(empty_pg_url: str) -> None:
    from alembic import command

    from cartwheel.db import alembic_config

    upgrade(empty_pg_url)
    command.downgrade(alembic_config(empty_pg_url), "base")
    engine = make_engine(Settings(database_url=empty_pg_url))
    try:
        assert current_revision(engine) is None
        assert set(sa.inspect(engine).get_table_names()) == {"alembic_version"}
    finally:
        engine.dispose()
    upgrade(empty_pg_url)
    assert _diff(empty_pg_url) == []


def test_every_table_is_shop_scoped_except_shops() -> None:
    unscoped = [
        name for name, table in Base.metadata.tables.items() if "shop_id" not in table.columns
    ]
    assert unscoped == ["shops"]
