"""Ops commands through the real entry point: click's runner on `cartwheel.cli:main`, and
the installed `cartwheel` console script in a subprocess for `demo` and `serve`."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
import sqlalchemy as sa
from click.testing import CliRunner, Result

from cartwheel.cli import main
from cartwheel.db import make_engine, session_factory
from cartwheel.errors import AuthenticationError
from cartwheel.settings import Settings
from cartwheel.tenancy import TokenContext, authenticate

ROOT = Path(__file__).resolve().parents[2]
CARTWHEEL = ROOT / ".venv" / "bin" / "cartwheel"


def cli(*args: str, env: dict[str, str] | None = None) -> Result:
    return CliRunner().invoke(main, list(args), env=env, catch_exceptions=False)


def _authenticate(url: str, raw: str) -> TokenContext:
    engine = make_engine(Settings(database_url=url))
    try:
        with session_factory(engine)() as session, session.begin():
            return authenticate(session, raw)
    finally:
        engine.dispose()


@pytest.fixture
def sqlite_url(tmp_path: Path) -> str:
    return f"sqlite:///{tmp_path / 'data' / 'cartwheel.db'}"


@pytest.mark.sqlite
def test_db_upgrade_and_current(sqlite_url: str) -> None:
    before = cli("db", "current", "--json", "--database-url", sqlite_url)
    assert json.loads(before.output)["upToDate"] is False
    result = cli("db", "upgrade", "--database-url", sqlite_url)
    assert result.exit_code == 0, result.output
    assert "database at head" in result.output
    after = json.loads(cli("db", "current", "--json", "--database-url", sqlite_url).output)
    assert after["upToDate"] is True
    assert after["current"] == after["head"]
    # idempotent
    assert cli("db", "upgrade", "--database-url", sqlite_url).exit_code == 0


@pytest.mark.sqlite
def test_ops_refuse_a_database_that_is_not_migrated(sqlite_url: str) -> None:
    result = CliRunner().invoke(main, ["shop", "create", "acme", "--database-url", sqlite_url])
    assert result.exit_code == 4
    assert "DATABASE_NOT_READY" in result.output
    assert "cartwheel db upgrade" in result.output


def test_shop_and_token_lifecycle_on_postgresql(migrated_pg_url: str) -> None:
    env = {"DATABASE_URL": migrated_pg_url}
    created = cli("shop", "create", "acme", "--currency", "EUR", "--json", env=env)
    assert created.exit_code == 0, created.output
    shop = json.loads(created.output)
    assert shop["handle"] == "acme"
    assert shop["currencyCode"] == "EUR"
    assert shop["id"].startswith("gid://cartwheel/Shop/")

    duplicate = CliRunner().invoke(main, ["shop", "create", "acme"], env=env)
    assert duplicate.exit_code == 3
    assert "CONFLICT" in duplicate.output
    bad_currency = CliRunner().invoke(main, ["shop", "create", "x", "--currency", "ZZZ"], env=env)
    assert bad_currency.exit_code == 3
    assert "ISO 4217" in bad_currency.output

    issued = cli(
        "token", "create", "--shop", "acme", "--scope", "admin", "--scope", "deploy", "--json",
        env=env,
    )  # fmt: skip
    assert issued.exit_code == 0, issued.output
    token = json.loads(issued.output)
    assert token["scopes"] == ["admin", "deploy"]
    context = _authenticate(migrated_pg_url, token["token"])
    assert f"gid://cartwheel/Shop/{context.shop_id}" == shop["id"]
    assert context.scopes == {"admin", "deploy"}

    # human output: the raw token alone on stdout, so `$(cartwheel token create ...)` works
    plain = CliRunner().invoke(
        main, ["token", "create", "--shop", "acme", "--scope", "storefront"], env=env
    )
    assert plain.exit_code == 0
    raw = plain.stdout.strip()
    assert raw.startswith("cwt_")
    assert "not shown again" in plain.stderr
    assert _authenticate(migrated_pg_url, raw).scopes == {"storefront"}

    missing = CliRunner().invoke(
        main, ["token", "create", "--shop", "nope", "--scope", "admin"], env=env
    )
    assert missing.exit_code == 3
    assert "cartwheel shop create nope" in missing.output
    bad_scope = CliRunner().invoke(
        main, ["token", "create", "--shop", "acme", "--scope", "root"], env=env
    )
    assert bad_scope.exit_code == 2  # click usage error

    revoked = cli("token", "revoke", "--shop", "acme", token["id"], env=env)
    assert revoked.exit_code == 0, revoked.output
    with pytest.raises(AuthenticationError):
        _authenticate(migrated_pg_url, token["token"])

    listed = json.loads(cli("shop", "list", "--json", env=env).output)
    assert [s["handle"] for s in listed] == ["acme"]


def _run_demo(data_dir: Path) -> dict[str, object]:
    env = {**os.environ, "CARTWHEEL_DATA_DIR": str(data_dir)}
    env.pop("DATABASE_URL", None)
    result = subprocess.run(
        [str(CARTWHEEL), "demo", "--json"],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    document: dict[str, object] = json.loads(result.stdout)
    return document


@pytest.mark.sqlite
def test_demo_seeds_once_on_the_embedded_default(tmp_path: Path) -> None:
    data_dir = tmp_path / "data"
    first = _run_demo(data_dir)
    url = f"sqlite:///{data_dir.resolve() / 'cartwheel.db'}"
    assert (data_dir / "cartwheel.db").exists()
    tokens = first["tokens"]
    assert isinstance(tokens, dict)
    assert set(tokens) == {"admin", "deploy", "storefront"}
    assert _authenticate(url, tokens["admin"]).scopes == {"admin"}

    second = _run_demo(data_dir)
    assert second["cartId"] == first["cartId"]
    assert second["shopId"] == first["shopId"]
    new_tokens = second["tokens"]
    assert isinstance(new_tokens, dict)
    assert new_tokens["admin"] != tokens["admin"]
    # only the tokens printed last work
    with pytest.raises(AuthenticationError):
        _authenticate(url, tokens["admin"])
    assert _authenticate(url, new_tokens["storefront"]).scopes == {"storefront"}
    engine = make_engine(Settings(database_url=url))
    try:
        with engine.connect() as conn:
            products = conn.execute(sa.text("SELECT count(*) FROM products")).scalar_one()
            shops = conn.execute(sa.text("SELECT count(*) FROM shops")).scalar_one()
    finally:
        engine.dispose()
    assert (shops, products) == (1, 7)


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


@pytest.fixture
def server_process(tmp_path: Path) -> Iterator[list[subprocess.Popen[str]]]:
    """Servers started by a test, stopped (SIGTERM, then SIGKILL) after it."""
    started: list[subprocess.Popen[str]] = []
    yield started
    for process in started:
        if process.poll() is None:
            process.send_signal(signal.SIGTERM)
            try:
                process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()


def _wait_healthy(
    url: str, process: subprocess.Popen[str], timeout: float = 60.0
) -> httpx.Response:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            _, err = process.communicate()
            pytest.fail(f"server exited with {process.returncode}: {err[-2000:]}")
        try:
            response = httpx.get(url, timeout=2)
            if response.status_code == 200:
                return response
        except httpx.TransportError:
            pass
        time.sleep(0.2)
    pytest.fail(f"{url} did not become healthy in {timeout} s")


@pytest.mark.sqlite
@pytest.mark.slow
def test_demo_serve_and_serve_with_workers(
    tmp_path: Path, server_process: list[subprocess.Popen[str]]
) -> None:
    data_dir = tmp_path / "data"
    env = {**os.environ, "CARTWHEEL_DATA_DIR": str(data_dir)}
    env.pop("DATABASE_URL", None)
    env.pop("REDIS_URL", None)

    port = _free_port()
    demo = subprocess.Popen(
        [str(CARTWHEEL), "demo", "--serve", "--port", str(port)],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    server_process.append(demo)
    _wait_healthy(f"http://127.0.0.1:{port}/healthz", demo)
    demo.send_signal(signal.SIGTERM)
    out, _ = demo.communicate(timeout=30)
    assert "admin token:" in out
    # A developer's demo server logs each request (uvicorn's access log goes to
    # stdout); production `serve` does not.
    assert '"GET /healthz HTTP/1.1" 200' in out

    port = _free_port()
    served = subprocess.Popen(
        [str(CARTWHEEL), "serve", "--port", str(port), "--workers", "2"],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    server_process.append(served)
    health = _wait_healthy(f"http://127.0.0.1:{port}/healthz", served)
    assert health.status_code == 200
    served.send_signal(signal.SIGTERM)
    out, err = served.communicate(timeout=30)
    assert "Started parent process" in err or "Uvicorn running" in err
    assert "GET /healthz" not in out + err, "no access log unless --access-log"
