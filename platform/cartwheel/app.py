"""The ASGI application: `create_app(settings)`.

Routes: `/graphql` (the admin API, GraphiQL in a browser), `/healthz` (database and,
when configured, Redis), `/metrics` (Prometheus text format, one registry per app) and
`/static/` (GraphiQL's assets, served locally).

The lifespan owns every long-lived resource (engine, Redis clients, the deploy queue);
they live on `app.state.services` and are released at shutdown. Errors leave through
one handler per transport: `PlatformError` and the SDK's `CartwheelError` as JSON with a
`code` and their HTTP status, a lost database connection as DATABASE_UNAVAILABLE (503,
`Retry-After`), anything unexpected masked as INTERNAL_ERROR (500).
"""

from __future__ import annotations

import gc
import logging
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from importlib import resources
from typing import Any

import anyio.to_thread
import redis
import sqlalchemy as sa
from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    Histogram,
    generate_latest,
)
from redis.asyncio import Redis as AsyncRedis
from sqlalchemy.engine import Engine
from sqlalchemy.orm import Session, sessionmaker
from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Mount, Route
from starlette.staticfiles import StaticFiles
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from cartwheel import __version__
from cartwheel.api.context import bearer_token
from cartwheel.api.errors import INTERNAL_ERROR_MESSAGE
from cartwheel.api.schema import build_schema
from cartwheel.api.view import AdminGraphQL, graphql_error_response
from cartwheel.db import make_engine, retry_on_dropped_connection, session_factory
from cartwheel.deploy import Deployer
from cartwheel.errors import DatabaseUnavailableError, PayloadTooLargeError
from cartwheel.jobs import deploy_queue
from cartwheel.ratelimit import MemoryRateLimiter, RateLimiter, RedisRateLimiter, rate_limit_key
from cartwheel.settings import Settings
from cartwheel.storefront import Storefront
from functions_sdk.errors import CartwheelError

logger = logging.getLogger(__name__)

GRAPHQL_PATH = "/graphql"

REDIS_TIMEOUT_S = 5.0
"""Connect and read timeout of the app's Redis clients (queue, rate limits, health)."""


class Metrics:
    """The app's Prometheus metrics, in a registry of its own (several apps may live in
    one process, e.g. in tests, without colliding in the global registry)."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        self.requests = Counter(
            "cartwheel_http_requests",
            "HTTP requests handled, by route and status.",
            ["method", "route", "status"],
            registry=self.registry,
        )
        self.latency = Histogram(
            "cartwheel_http_request_duration_seconds",
            "Time to answer an HTTP request, by route.",
            ["route"],
            registry=self.registry,
        )
        self.rate_limited = Counter(
            "cartwheel_rate_limited_requests",
            "Requests refused because their token exceeded its rate limit.",
            registry=self.registry,
        )
        self.deploys = Counter(
            "cartwheel_function_deploys",
            "Function deploys accepted (new versions and idempotent repeats).",
            ["outcome"],
            registry=self.registry,
        )
        self.graphql_errors = Counter(
            "cartwheel_graphql_errors",
            "Errors returned by the admin API, by extensions.code (a fixed set).",
            ["code"],
            registry=self.registry,
        )


@dataclass
class Services:
    """The long-lived resources of one app, created by its lifespan."""

    settings: Settings
    engine: Engine
    session_factory: sessionmaker[Session]
    metrics: Metrics
    rate_limiter: RateLimiter
    deployer: Deployer
    redis: redis.Redis | None
    """Synchronous client (RQ, deploy jobs); None without Redis."""
    aioredis: AsyncRedis | None
    """Asynchronous client (rate limits, health); None without Redis."""
    storefront: Storefront
    """The storefront routes and the checkout pipeline (with its run-log writer)."""


# --- middleware ---------------------------------------------------------------------


class BodySizeLimit:
    """Refuses request bodies over `max_bytes` (413, PAYLOAD_TOO_LARGE) without reading
    them: at once when `Content-Length` says so, else as soon as the streamed body
    crosses the limit."""

    def __init__(self, app: ASGIApp, max_bytes: int) -> None:
        self.app = app
        self.max_bytes = max_bytes

    def _error(self) -> PayloadTooLargeError:
        return PayloadTooLargeError(
            f"The request body exceeds the {self.max_bytes}-byte limit of this server "
            "(CARTWHEEL_MAX_UPLOAD_BYTES); send a smaller module (optimize the build, "
            "strip debug info).",
            limit_bytes=self.max_bytes,
        )

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        for name, value in scope["headers"]:
            if name == b"content-length":
                try:
                    declared = int(value)
                except ValueError:
                    declared = 0
                if declared > self.max_bytes:
                    response = _error_response(scope["path"], self._error())
                    await response(scope, receive, send)
                    return
        received = 0

        async def limited_receive() -> Message:
            nonlocal received
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > self.max_bytes:
                    raise self._error()
            return message

        await self.app(scope, limited_receive, send)


class RateLimit:
    """Per-token rate limit on the admin API (429, RATE_LIMITED, with Retry-After)."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["path"] != GRAPHQL_PATH or scope["method"] != "POST":
            await self.app(scope, receive, send)
            return
        services: Services = scope["app"].state.services
        request = Request(scope)
        client = request.client.host if request.client else None
        decision = await services.rate_limiter.hit(rate_limit_key(bearer_token(request), client))
        headers = {
            "RateLimit-Limit": str(decision.limit),
            "RateLimit-Remaining": str(decision.remaining),
        }
        if not decision.allowed:
            services.metrics.rate_limited.inc()
            response = graphql_error_response(
                429,
                "RATE_LIMITED",
                f"This token made more than {decision.limit} requests in the current "
                f"minute; retry after {decision.retry_after_s} s.",
            )
            response.headers.update(headers)
            response.headers["Retry-After"] = str(decision.retry_after_s)
            await response(scope, receive, send)
            return

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                message.setdefault("headers", [])
                message["headers"] = [
                    *message["headers"],
                    *((k.lower().encode(), v.encode()) for k, v in headers.items()),
                ]
            await send(message)

        await self.app(scope, receive, send_with_headers)


class RequestMetrics:
    """Counts requests and their latency per route (the route template, never the raw
    path, so cardinality stays bounded)."""

    def __init__(self, app: ASGIApp, metrics: Metrics) -> None:
        self.app = app
        self.metrics = metrics

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        start = time.perf_counter()
        status = 500

        async def record_status(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = int(message["status"])
            await send(message)

        try:
            await self.app(scope, receive, record_status)
        finally:
            route = _route_label(scope)
            self.metrics.requests.labels(scope["method"], route, str(status)).inc()
            self.metrics.latency.labels(route).observe(time.perf_counter() - start)


def _route_label(scope: Scope) -> str:
    path: str = scope["path"]
    for prefix in (GRAPHQL_PATH, "/healthz", "/metrics"):
        if path == prefix:
            return prefix
    if path.startswith("/static/"):
        return "/static"
    return "other"


# --- handlers -----------------------------------------------------------------------


def _error_response(path: str, exc: CartwheelError) -> JSONResponse:
    # GraphQL clients read `errors[].extensions.code`; other endpoints `error.code`.
    status = int(getattr(exc, "http_status", 400))
    if path == GRAPHQL_PATH:
        return graphql_error_response(status, exc.code, exc.message)
    return JSONResponse({"error": exc.to_dict()}, status_code=status)


async def _cartwheel_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, CartwheelError)
    return _error_response(request.url.path, exc)


async def _http_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, HTTPException)
    code = {404: "NOT_FOUND", 405: "METHOD_NOT_ALLOWED"}.get(exc.status_code, "BAD_REQUEST")
    return JSONResponse(
        {"error": {"code": code, "message": str(exc.detail)}},
        status_code=exc.status_code,
        headers=exc.headers,
    )


DATABASE_RETRY_AFTER_S = 1
"""`Retry-After` of a DATABASE_UNAVAILABLE answer (a restart takes seconds)."""

_UNAVAILABLE_SQLSTATES = frozenset({"57P01", "57P02", "57P03"})
"""admin_shutdown, crash_shutdown, cannot_connect_now: the server is stopping or starting."""


def is_database_unavailable(exc: BaseException) -> bool:
    """Whether `exc` means the database cannot be reached (refused, dropped, shutting
    down, starting up), as opposed to an error in the statement or the data.

    Connection failures have no SQLSTATE (the client saw the socket fail) or one of
    class 08 (connection exception) or 57P01-03; a connection SQLAlchemy found broken
    is flagged `connection_invalidated`. Deadlocks, lock timeouts and cancellations,
    also `OperationalError`s, are not outages.
    """
    if not isinstance(exc, sa.exc.DBAPIError):
        return False
    if exc.connection_invalidated:
        return True
    if not isinstance(exc, sa.exc.OperationalError):
        return False
    sqlstate = getattr(exc.orig, "sqlstate", None)
    return sqlstate is None or sqlstate.startswith("08") or sqlstate in _UNAVAILABLE_SQLSTATES


async def _database_error(request: Request, exc: Exception) -> Response:
    if not is_database_unavailable(exc):
        return await _unexpected_error(request, exc)
    logger.warning("database unavailable on %s: %s", request.url.path, exc.__cause__ or exc)
    response = _error_response(
        request.url.path,
        DatabaseUnavailableError(
            "The database is unavailable (restarting or unreachable); nothing was changed. "
            f"Retry in {DATABASE_RETRY_AFTER_S} s.",
        ),
    )
    response.headers["Retry-After"] = str(DATABASE_RETRY_AFTER_S)
    return response


async def _unexpected_error(request: Request, exc: Exception) -> Response:
    logger.error("unexpected error on %s", request.url.path, exc_info=exc)
    return JSONResponse(
        {"error": {"code": "INTERNAL_ERROR", "message": INTERNAL_ERROR_MESSAGE}}, status_code=500
    )


async def healthz(request: Request) -> Response:
    """200 when the database (and Redis, when configured) answer; 503 naming the failing
    dependency otherwise."""
    services: Services = request.app.state.services
    checks: dict[str, str] = {}

    def ping_db() -> None:
        with services.engine.connect() as conn:
            conn.execute(sa.text("SELECT 1"))

    try:
        # A pooled connection the database dropped (a restart) is not an outage.
        await anyio.to_thread.run_sync(retry_on_dropped_connection, ping_db)
        checks["database"] = "ok"
    except Exception as exc:
        logger.warning("health check: database unreachable: %s", exc)
        checks["database"] = "unreachable"
    if services.aioredis is not None:
        try:
            await services.aioredis.ping()
            checks["redis"] = "ok"
        except Exception as exc:
            logger.warning("health check: redis unreachable: %s", exc)
            checks["redis"] = "unreachable"
    healthy = all(v == "ok" for v in checks.values())
    body: dict[str, Any] = {
        "status": "ok" if healthy else "unavailable",
        "version": __version__,
        "checks": checks,
    }
    if not healthy:
        body["code"] = "DEPENDENCY_UNAVAILABLE"
    return JSONResponse(body, status_code=200 if healthy else 503)


async def metrics_endpoint(request: Request) -> Response:
    """The app's metrics in the Prometheus text exposition format."""
    services: Services = request.app.state.services
    return Response(generate_latest(services.metrics.registry), media_type=CONTENT_TYPE_LATEST)


# --- factory ------------------------------------------------------------------------


def freeze_startup_objects() -> None:
    """Move every object alive now (modules, the GraphQL schema, the Function API
    registry: what lives as long as the process) out of the garbage collector's view.

    A full collection walks every tracked object; in a serving process that was
    ≈ 170,000 objects and 65-90 ms, and the garbage of large checkouts triggered one
    every few dozen of them: the p99 of a 200-line evaluate was 94 ms, 13 ms with the
    startup objects frozen. The lifespan unfreezes them at shutdown.
    """
    gc.collect()
    gc.freeze()


def create_app(settings: Settings) -> Starlette:
    """The Cartwheel server for `settings` (see the module docstring).

    Nothing connects until the lifespan starts: building an app is cheap and pure.
    """
    metrics = Metrics()
    schema = build_schema()
    storefront = Storefront(settings)

    @asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        engine = make_engine(settings)
        # Short timeouts: a Redis that hangs must fail a request, not hold it forever.
        sync_redis: redis.Redis | None = None
        async_redis: AsyncRedis | None = None
        if settings.redis_url:
            sync_redis = redis.Redis.from_url(
                settings.redis_url,
                socket_timeout=REDIS_TIMEOUT_S,
                socket_connect_timeout=REDIS_TIMEOUT_S,
            )
            async_redis = AsyncRedis.from_url(
                settings.redis_url,
                socket_timeout=REDIS_TIMEOUT_S,
                socket_connect_timeout=REDIS_TIMEOUT_S,
            )
        limiter: RateLimiter = (
            RedisRateLimiter(async_redis, settings.rate_limit_per_minute)
            if async_redis is not None
            else MemoryRateLimiter(settings.rate_limit_per_minute)
        )
        factory = session_factory(engine)
        queue = deploy_queue(sync_redis) if sync_redis is not None else None
        app.state.services = Services(
            settings=settings,
            engine=engine,
            session_factory=factory,
            metrics=metrics,
            rate_limiter=limiter,
            deployer=Deployer(settings, factory, queue=queue),
            redis=sync_redis,
            aioredis=async_redis,
            storefront=storefront,
        )
        storefront.start(engine, factory)
        freeze_startup_objects()
        try:
            yield
        finally:
            gc.unfreeze()
            storefront.close()
            if async_redis is not None:
                await async_redis.aclose()
            if sync_redis is not None:
                sync_redis.close()
            engine.dispose()

    graphql = AdminGraphQL(schema)
    static_dir = resources.files("cartwheel").joinpath("static")
    app = Starlette(
        debug=False,
        routes=[
            Route(GRAPHQL_PATH, graphql, methods=["GET", "POST"]),
            Route("/healthz", healthz, methods=["GET"]),
            Route("/metrics", metrics_endpoint, methods=["GET"]),
            storefront.mount(),
            Mount("/static", StaticFiles(directory=str(static_dir)), name="static"),
        ],
        middleware=[
            Middleware(RequestMetrics, metrics=metrics),
            Middleware(BodySizeLimit, max_bytes=settings.max_upload_bytes),
            Middleware(RateLimit),
        ],
        exception_handlers={
            CartwheelError: _cartwheel_error,
            HTTPException: _http_error,
            sa.exc.DBAPIError: _database_error,
            Exception: _unexpected_error,
        },
        lifespan=lifespan,
    )
    return app
