"""GraphiQL in a real browser: Debian's headless Chromium, driven by Playwright, loads
the IDE from a real uvicorn server (assets served locally, no CDN), runs a query with a
bearer token and shows the shop. The screenshot is kept in test-artifacts/."""

from __future__ import annotations

import json
import socket
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import urlencode

import pytest
import uvicorn

from cartwheel.app import create_app
from cartwheel.db import make_engine, session_factory
from cartwheel.settings import Settings
from cartwheel.tenancy import create_shop, issue_token

ROOT = Path(__file__).resolve().parents[2]
ARTIFACTS = ROOT / "test-artifacts"
CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


@pytest.fixture
def server(migrated_pg_url: str, tmp_path: Path) -> Iterator[tuple[str, str]]:
    engine = make_engine(Settings(database_url=migrated_pg_url))
    with session_factory(engine)() as session:
        shop = create_shop(session, handle="graphiql-shop", name="GraphiQL Shop")
        token = issue_token(session, shop.id, ["admin"])[1]
        session.commit()
    engine.dispose()
    port = free_port()
    app = create_app(Settings(data_dir=tmp_path, database_url=migrated_pg_url))
    config = uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning")
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 30
    while not server.started:
        assert thread.is_alive(), "uvicorn exited during startup"
        assert time.monotonic() < deadline, "uvicorn did not start"
        time.sleep(0.05)
    try:
        yield f"http://127.0.0.1:{port}", token
    finally:
        server.should_exit = True
        thread.join(timeout=30)


def test_graphiql_loads_and_runs_a_query_in_chromium(server: tuple[str, str]) -> None:
    from playwright.sync_api import sync_playwright

    base, token = server
    query = "query Shop {\n  shop {\n    handle\n    name\n  }\n}\n"
    url = f"{base}/graphql?" + urlencode(
        {"q": query, "headers": json.dumps({"Authorization": f"Bearer {token}"})}
    )
    requested: list[str] = []
    ARTIFACTS.mkdir(exist_ok=True)
    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        try:
            page = browser.new_page(viewport={"width": 1280, "height": 800})
            page.on("request", lambda request: requested.append(request.url))
            errors: list[str] = []
            page.on("pageerror", lambda exc: errors.append(str(exc)))
            page.goto(url, wait_until="load")
            page.wait_for_selector(".graphiql-container", timeout=30_000)
            page.click(".graphiql-execute-button")
            result = page.locator(".graphiql-response")
            result.get_by_text("GraphiQL Shop").wait_for(timeout=30_000)
            page.screenshot(path=str(ARTIFACTS / "graphiql.png"))
            text = result.inner_text()
        finally:
            browser.close()
    assert '"handle": "graphiql-shop"' in text
    assert errors == []
    # Everything came from our server: the IDE works offline.
    assert requested
    assert all(u.startswith(base) or u.startswith("data:") for u in requested), requested
    assert any(u.endswith("/static/graphiql/graphiql.min.js") for u in requested)
    assert (ARTIFACTS / "graphiql.png").stat().st_size > 10_000
