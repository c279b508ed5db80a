"""Settings: the environment, read once into a frozen object and passed down.

Nothing else in the server reads `os.environ`.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

from functions_sdk.limits import Limits

DEFAULT_DATA_DIR = Path(".cartwheel")
"""Where the embedded default keeps its SQLite file and module cache."""


def _int(env: Mapping[str, str], name: str, default: int) -> int:
    raw = env.get(name)
    if raw is None or raw == "":
        return default
    try:
        return int(raw)
    except ValueError:
        raise ValueError(f"{name} must be an integer, got {raw!r}") from None


@dataclass(frozen=True, slots=True)
class Settings:
    """Every knob of the server. Build with `Settings.from_env()`; tests pass their own."""

    data_dir: Path = DEFAULT_DATA_DIR
    database_url: str = ""
    """SQLAlchemy URL. Empty: a SQLite file in `data_dir`."""
    redis_url: str | None = None
    """Redis for RQ jobs, run-log ingestion and rate limits. None: in-process fallbacks."""
    module_cache_dir: Path | None = None
    """On-disk cache of precompiled modules shared by the processes of one node."""
    limits: Limits = field(default_factory=Limits)
    """Default run limits (targets may override)."""
    max_upload_bytes: int = 1_000_000
    """Largest request body accepted by the admin API (checked before reading it all)."""
    rate_limit_per_minute: int = 600
    """Admin API requests per token per minute."""
    run_log_retention_days: int = 30
    run_log_retention_per_function: int = 10_000
    storefront_threads: int = 2
    """Storefront requests (checkouts, cart changes) a process runs at once, each in a
    worker thread; the others wait their turn in the event loop. The work is CPU-bound
    under the GIL, so more threads only add contention: in the checkout benchmark (2
    processes on 2 cores) 40 threads gave 219 checkouts/s, 3 gave 299, 2 gave 328 and 1
    gave 356. Two keep one slow request (a function at its time limit, a slow query)
    from stalling the process. Scale with processes, not threads."""
    debug: bool = False

    def __post_init__(self) -> None:
        if self.storefront_threads < 1:
            raise ValueError(
                f"CARTWHEEL_STOREFRONT_THREADS must be at least 1, got {self.storefront_threads}"
            )
        if not self.database_url:
            object.__setattr__(
                self, "database_url", f"sqlite:///{(self.data_dir / 'cartwheel.db').resolve()}"
            )
        if self.module_cache_dir is None:
            object.__setattr__(self, "module_cache_dir", self.data_dir / "module-cache")

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> Settings:
        """Read `CARTWHEEL_*`, `DATABASE_URL` and `REDIS_URL`.

        Raises `ValueError` naming the variable when a value does not parse.
        """
        env = os.environ if env is None else env
        data_dir = Path(env.get("CARTWHEEL_DATA_DIR") or DEFAULT_DATA_DIR)
        cache = env.get("CARTWHEEL_MODULE_CACHE_DIR")
        defaults = Limits()
        limits = Limits(
            instructions=_int(env, "CARTWHEEL_INSTRUCTIONS_LIMIT", defaults.instructions),
            input_bytes=_int(env, "CARTWHEEL_INPUT_BYTES_LIMIT", defaults.input_bytes),
            output_bytes=_int(env, "CARTWHEEL_OUTPUT_BYTES_LIMIT", defaults.output_bytes),
            module_bytes=_int(env, "CARTWHEEL_MODULE_BYTES_LIMIT", defaults.module_bytes),
            linear_memory_bytes=_int(
                env, "CARTWHEEL_LINEAR_MEMORY_BYTES_LIMIT", defaults.linear_memory_bytes
            ),
            stack_bytes=_int(env, "CARTWHEEL_STACK_BYTES_LIMIT", defaults.stack_bytes),
            log_bytes=_int(env, "CARTWHEEL_LOG_BYTES_LIMIT", defaults.log_bytes),
            timeout_ms=_int(env, "CARTWHEEL_TIMEOUT_MS", defaults.timeout_ms),
        )
        return cls(
            data_dir=data_dir,
            database_url=env.get("DATABASE_URL", ""),
            redis_url=env.get("REDIS_URL") or None,
            module_cache_dir=Path(cache) if cache else None,
            limits=limits,
            max_upload_bytes=_int(env, "CARTWHEEL_MAX_UPLOAD_BYTES", 1_000_000),
            rate_limit_per_minute=_int(env, "CARTWHEEL_RATE_LIMIT_PER_MINUTE", 600),
            run_log_retention_days=_int(env, "CARTWHEEL_RUN_LOG_RETENTION_DAYS", 30),
            run_log_retention_per_function=_int(
                env, "CARTWHEEL_RUN_LOG_RETENTION_PER_FUNCTION", 10_000
            ),
            storefront_threads=_int(env, "CARTWHEEL_STOREFRONT_THREADS", 2),
            debug=env.get("CARTWHEEL_DEBUG", "") in {"1", "true", "yes"},
        )
