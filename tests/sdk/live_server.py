"""The real app under a real uvicorn server on a loopback port, for the tests of the
admin API client and of the commands that talk to a server (`fn deploy`, `logs`,
`replay`); the fixtures are in conftest.py.

The server runs in a thread of the test process with the demo shop seeded (without its
functions) and fresh tokens issued.
"""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import httpx
import uvicorn

from cartwheel.app import create_app
from cartwheel.db import make_engine, session_factory
from cartwheel.demo import issue_demo_tokens, seed_demo
from cartwheel.settings import Settings

ROOT = Path(__file__).resolve().parents[2]
EXAMPLES = ROOT / "examples"


@dataclass(frozen=True)
class LiveServer:
    """A running server: its URL, the demo shop's tokens and cart."""

    url: str
    tokens: dict[str, str]
    """admin, deploy and storefront tokens of the demo shop."""
    cart_key: int
    """The demo cart's key (`/storefront/carts/<key>`)."""
    settings: Settings

    def checkout(self, cart_key: int | None = None) -> dict[str, object]:
        """Check out a cart through the storefront API (the demo cart by default)."""
        response = httpx.post(
            f"{self.url}/storefront/carts/{cart_key or self.cart_key}/checkout",
            headers={"Authorization": f"Bearer {self.tokens['storefront']}"},
            timeout=30,
        )
        assert response.status_code == 200, response.text
        body: dict[str, object] = response.json()
        return body


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


@contextmanager
def serve(settings: Settings) -> Iterator[LiveServer]:
    """Seed the demo shop (without its functions), then serve the app on a free port."""
    engine = make_engine(settings)
    try:
        with session_factory(engine)() as session, session.begin():
            seeded = seed_demo(session)
            tokens = issue_demo_tokens(session, seeded.shop_id)
    finally:
        engine.dispose()
    port = free_port()
    config = uvicorn.Config(
        create_app(settings), host="127.0.0.1", port=port, log_level="warning", lifespan="on"
    )
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, name="live-server", daemon=True)
    thread.start()
    deadline = time.monotonic() + 30
    while not server.started:
        assert thread.is_alive(), "the server thread died during startup"
        assert time.monotonic() < deadline, "the server did not start in 30 s"
        time.sleep(0.02)
    try:
        yield LiveServer(f"http://127.0.0.1:{port}", tokens, seeded.cart_id, settings)
    finally:
        server.should_exit = True
        thread.join(timeout=30)
