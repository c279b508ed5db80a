"""A minimal ASGI app the harness tests run under uvicorn while no Cartwheel app is needed.

`/healthz` answers 200; `/whoami` answers this process's pid, so a test can tell which
process behind the load balancer served a request.
"""

from __future__ import annotations

import os
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]


async def app(
    scope: Scope,
    receive: Callable[[], Awaitable[Message]],
    send: Callable[[Message], Awaitable[None]],
) -> None:
    if scope["type"] == "lifespan":
        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                await send({"type": "lifespan.startup.complete"})
            elif message["type"] == "lifespan.shutdown":
                await send({"type": "lifespan.shutdown.complete"})
                return
    assert scope["type"] == "http"
    if scope["path"] == "/healthz":
        status, body = 200, b"ok"
    elif scope["path"] == "/whoami":
        status, body = 200, str(os.getpid()).encode()
    else:
        status, body = 404, b"not found"
    await send(
        {
            "type": "http.response.start",
            "status": status,
            "headers": [
                (b"content-type", b"text/plain"),
                (b"content-length", str(len(body)).encode()),
            ],
        }
    )
    await send({"type": "http.response.body", "body": body})
