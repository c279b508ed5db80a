"""Per-token rate limiting of the admin API.

A fixed window per key: at most `limit` requests in each `window_s` window. Keys are the
SHA-256 of the bearer token (the raw token is never stored), or of the client address
for requests without one, so a client cannot escape the limit by sending no token.

Two interchangeable backends with one contract (`RateLimiter.hit`):

- `RedisRateLimiter` counts in Redis with one atomic `INCR` + `EXPIRE NX` pipeline, so
  every API process behind a load balancer shares the same budget;
- `MemoryRateLimiter` counts in this process, for the embedded default without Redis.
"""

from __future__ import annotations

import hashlib
import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol

from redis.asyncio import Redis
from redis.exceptions import RedisError

logger = logging.getLogger(__name__)

RATE_LIMIT_KEY_PREFIX = "cartwheel:ratelimit:"
"""Prefix of every Redis key this module owns."""

DEFAULT_WINDOW_S = 60
"""Length of one rate-limit window, in seconds (limits are configured per minute)."""


@dataclass(frozen=True, slots=True)
class RateLimitDecision:
    """The outcome of one `hit`: whether the request may proceed and what is left."""

    allowed: bool
    limit: int
    remaining: int
    retry_after_s: int
    """Seconds until the current window ends (when the budget is refilled)."""


class RateLimiter(Protocol):
    """Counts requests per key; `hit` records one request and says whether it fits."""

    limit: int
    window_s: int

    async def hit(self, key: str) -> RateLimitDecision: ...


def rate_limit_key(token: str | None, client_host: str | None) -> str:
    """The limiter key of a request: a digest of its token, else of its client address."""
    if token:
        return "token:" + hashlib.sha256(token.encode()).hexdigest()
    return "client:" + hashlib.sha256((client_host or "unknown").encode()).hexdigest()


def _decision(count: int, limit: int, retry_after_s: int) -> RateLimitDecision:
    return RateLimitDecision(
        allowed=count <= limit,
        limit=limit,
        remaining=max(limit - count, 0),
        retry_after_s=max(retry_after_s, 1),
    )


class MemoryRateLimiter:
    """In-process fixed-window counter (one process, no Redis)."""

    def __init__(
        self,
        limit: int,
        window_s: int = DEFAULT_WINDOW_S,
        *,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.limit = limit
        self.window_s = window_s
        self._clock = clock
        self._lock = threading.Lock()
        self._windows: dict[str, tuple[int, int]] = {}
        """key -> (window number, count in that window)."""

    async def hit(self, key: str) -> RateLimitDecision:
        now = self._clock()
        window = int(now // self.window_s)
        with self._lock:
            current, count = self._windows.get(key, (window, 0))
            count = count + 1 if current == window else 1
            self._windows[key] = (window, count)
            if len(self._windows) > 10_000:
                # Drop keys of past windows so an idle population does not grow forever.
                self._windows = {k: v for k, v in self._windows.items() if v[0] == window}
        retry = int((window + 1) * self.window_s - now) + 1
        return _decision(count, self.limit, retry)


class RedisRateLimiter:
    """Fixed-window counter in Redis, shared by every process using the same Redis.

    When Redis does not answer, requests are counted in this process instead (each
    process then enforces the limit on its own share of traffic): a rate limiter that
    fails must not take the API down with it.
    """

    def __init__(self, redis: Redis, limit: int, window_s: int = DEFAULT_WINDOW_S) -> None:
        self.limit = limit
        self.window_s = window_s
        self._redis = redis
        self._fallback = MemoryRateLimiter(limit, window_s)
        self._degraded = False

    async def hit(self, key: str) -> RateLimitDecision:
        try:
            decision = await self._hit_redis(key)
        except RedisError as exc:
            if not self._degraded:
                logger.warning("rate limits counted in-process: Redis unavailable (%s)", exc)
                self._degraded = True
            return await self._fallback.hit(key)
        if self._degraded:
            logger.info("rate limits counted in Redis again")
            self._degraded = False
        return decision

    async def _hit_redis(self, key: str) -> RateLimitDecision:
        now = time.time()
        window = int(now // self.window_s)
        redis_key = f"{RATE_LIMIT_KEY_PREFIX}{key}:{window}"
        async with self._redis.pipeline(transaction=True) as pipe:
            pipe.incr(redis_key)
            # A little longer than the window, so a key outlives clock skew between nodes.
            pipe.expire(redis_key, self.window_s + 5, nx=True)
            count, _ = await pipe.execute()
        retry = int((window + 1) * self.window_s - now) + 1
        return _decision(int(count), self.limit, retry)
