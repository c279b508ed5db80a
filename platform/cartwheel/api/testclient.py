"""`AppClient`: drive an ASGI app in-process, synchronously, through the real stack.

The app runs with its lifespan on an event loop in a background thread (an anyio
blocking portal); requests go through httpx's `ASGITransport`, so middleware, routing,
exception handlers and the GraphQL view all run as they do under uvicorn. Tests,
benchmarks and scripts use it where Starlette's own TestClient would need `httpx2`.

    with AppClient(create_app(settings)) as client:
        client.post("/graphql", json={"query": "{ shop { id } }"}, headers=...)
"""

from __future__ import annotations

import functools
from contextlib import AbstractAsyncContextManager, AbstractContextManager
from types import TracebackType
from typing import Any

import anyio.from_thread
import httpx
from anyio.from_thread import BlockingPortal
from starlette.applications import Starlette


class AppClient:
    """A synchronous HTTP client bound to one ASGI app (see the module docstring)."""

    def __init__(self, app: Starlette, base_url: str = "http://testserver") -> None:
        self.app = app
        self.base_url = base_url
        self._portal_cm: AbstractContextManager[BlockingPortal] | None = None
        self._portal: BlockingPortal | None = None
        self._lifespan: AbstractAsyncContextManager[Any] | None = None
        self._client: httpx.AsyncClient | None = None

    def __enter__(self) -> AppClient:
        self._portal_cm = anyio.from_thread.start_blocking_portal()
        self._portal = self._portal_cm.__enter__()
        try:
            self._lifespan = self.app.router.lifespan_context(self.app)
            self._portal.call(self._lifespan.__aenter__)
            self._client = httpx.AsyncClient(
                transport=httpx.ASGITransport(app=self.app), base_url=self.base_url
            )
        except BaseException:
            self._portal_cm.__exit__(None, None, None)
            raise
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        assert self._portal is not None
        assert self._portal_cm is not None
        try:
            if self._client is not None:
                self._portal.call(self._client.aclose)
            if self._lifespan is not None:
                self._portal.call(self._lifespan.__aexit__, None, None, None)
        finally:
            self._portal_cm.__exit__(exc_type, exc, tb)

    def request(self, method: str, url: str, **kwargs: Any) -> httpx.Response:
        """Send one request (httpx's keyword arguments) and return the response."""
        if self._portal is None or self._client is None:
            raise RuntimeError("use AppClient as a context manager: `with AppClient(app) as c:`")
        call = functools.partial(self._client.request, method, url, **kwargs)
        return self._portal.call(call)

    def get(self, url: str, **kwargs: Any) -> httpx.Response:
        """GET `url`."""
        return self.request("GET", url, **kwargs)

    def post(self, url: str, **kwargs: Any) -> httpx.Response:
        """POST to `url`."""
        return self.request("POST", url, **kwargs)
