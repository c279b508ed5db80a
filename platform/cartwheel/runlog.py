"""Run logs: every function run recorded, off the checkout's hot path.

A checkout hands each run to `RunLogWriter.submit`, which only appends to an in-memory
queue (microseconds). The writer's background thread delivers batches:

1. to Redis (`RunLogQueue`, an `RPUSH` of serialized records) when Redis is configured;
   `cartwheel runlog-ingest` (or `ingest_once` from a job) moves them into PostgreSQL
   with one multi-row INSERT per batch;
2. straight into the database (one INSERT per batch) when Redis is not configured, or
   is down: Redis calls use short socket timeouts and a circuit breaker, so a dead Redis
   costs one timeout, then nothing until the breaker half-opens again;
3. to an append-only local spool file (JSON lines) when the database refuses too. The
   spool is replayed into the database as soon as a write succeeds again.

So a run is lost only if the process dies with records still in memory (the queue is
flushed on `close()`, which the app calls at shutdown) or if Redis itself loses data —
run Redis with `appendonly yes` in production (docs/CHECKOUT.md, "Run logs").

The ingestion from Redis is at-least-once: a batch is moved atomically to the
consumer's own processing list, inserted, then dropped; a consumer that died is
adopted by the next one (`RunLogQueue.claim`). Retention (`prune`) deletes logs older
than `Settings.run_log_retention_days` and keeps at most
`Settings.run_log_retention_per_function` per function.
"""

from __future__ import annotations

import contextlib
import dataclasses
import logging
import os
import queue
import signal
import socket
import threading
import time
import uuid
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import click
import orjson
import redis
import sqlalchemy as sa
from sqlalchemy.engine import Engine

from cartwheel.models import RUN_LOG_INPUT_CAP_BYTES, RUN_LOG_OUTPUT_CAP_BYTES, RunLog
from cartwheel.settings import Settings
from functions_sdk.runner.result import RunResult

logger = logging.getLogger(__name__)

QUEUE_KEY = "cartwheel:runlog:queue"
"""Redis list of serialized run records waiting for ingestion."""

PROCESSING_PREFIX = "cartwheel:runlog:processing:"
"""Per-consumer Redis list holding the batch being inserted (at-least-once delivery)."""

HEARTBEAT_PREFIX = "cartwheel:runlog:consumer:"
"""Per-consumer liveness key; a processing list without one is adopted by others."""

HEARTBEAT_TTL_S = 60
"""Seconds after which a silent consumer is considered dead."""

REDIS_SOCKET_TIMEOUT_S = 0.05
"""Socket connect/read timeout of the writer's Redis calls: a dead Redis costs ≤ this."""

BREAKER_RESET_S = 5.0
"""Seconds the circuit breaker stays open after a Redis failure before a new try."""

BATCH_SIZE = 500
"""Most records per Redis push, database insert or ingested batch."""

FLUSH_INTERVAL_S = 0.05
"""Longest a submitted record waits in memory before its batch is delivered."""

LINGER_S = 0.02
"""How long the writer lets records gather after the first of a batch arrives, so one
Redis push (or insert) carries the runs of many checkouts. Delivering each record as it
came woke the writer thread for every run and cost a round trip each: ≈ 1.4 ms of CPU
per 3-function checkout, a quarter of the API process's work."""

SPOOL_CHECK_INTERVAL_S = 1.0
"""How often the writer looks for a spool left to replay (one written by this process
is replayed at its next delivery round)."""

MEMORY_QUEUE_MAX = 100_000
"""Records held in memory at most; past it `submit` appends to the spool directly."""

SPOOL_FILENAME = "runlog-spool.jsonl"
"""The spool file, in `Settings.data_dir`."""


# --------------------------------------------------------------------------------------
# Records
# --------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class RunRecord:
    """One run, as stored in `run_logs` (JSON-serializable for Redis and the spool)."""

    shop_id: int
    function_id: int
    version_id: int
    instance_id: int | None
    cart_id: int | None
    target: str
    export: str
    status: str
    error_code: str | None
    error_message: str | None
    input: str
    input_bytes: int
    input_truncated: bool
    output: str | None
    output_bytes: int
    logs: str
    logs_truncated: bool
    fuel_consumed: int | None
    peak_memory_bytes: int | None
    duration_ms: float
    variables: dict[str, Any] | None
    created_at: datetime
    run_id: str = dataclasses.field(default_factory=lambda: uuid.uuid4().hex)
    """Unique key of the run (`run_logs.run_id`): every destination stores a record at
    most once, however often it is delivered."""

    @classmethod
    def from_run(
        cls,
        result: RunResult,
        *,
        input: bytes,
        shop_id: int,
        function_id: int,
        version_id: int,
        instance_id: int | None,
        cart_id: int | None,
        target: str,
        variables: dict[str, Any] | None = None,
        error_code: str | None = None,
        error_message: str | None = None,
    ) -> RunRecord:
        """A record of `result`. `error_code` / `error_message` override the runner's
        (checkout marks a run whose output failed validation INVALID_OUTPUT)."""
        failed = error_code is not None or not result.ok
        code = error_code or (result.error_code.value if result.error_code else None)
        output = result.output[:RUN_LOG_OUTPUT_CAP_BYTES].decode("utf-8", "replace")
        return cls(
            shop_id=shop_id,
            function_id=function_id,
            version_id=version_id,
            instance_id=instance_id,
            cart_id=cart_id,
            target=target,
            export=result.export,
            status="failed" if failed else result.status.value,
            error_code=code,
            error_message=error_message or (result.message or None if failed else None),
            input=input[:RUN_LOG_INPUT_CAP_BYTES].decode("utf-8", "replace"),
            input_bytes=len(input),
            input_truncated=len(input) > RUN_LOG_INPUT_CAP_BYTES,
            output=output if result.output else None,
            output_bytes=result.output_bytes,
            logs=result.logs,
            logs_truncated=result.logs_truncated,
            fuel_consumed=result.fuel_consumed,
            peak_memory_bytes=result.peak_memory_bytes,
            duration_ms=result.duration_ms,
            variables=variables,
            created_at=datetime.now(UTC),
        )

    def to_json(self) -> bytes:
        """Serialized form (orjson; `created_at` as ISO 8601)."""
        return orjson.dumps(self.to_row())

    @classmethod
    def from_json(cls, data: bytes | str) -> RunRecord:
        """Inverse of `to_json`. Raises `orjson.JSONDecodeError` / `KeyError` / `TypeError`
        for data that is not a serialized record."""
        raw = orjson.loads(data)
        raw["created_at"] = datetime.fromisoformat(raw["created_at"])
        return cls(**raw)

    def to_row(self) -> dict[str, Any]:
        """Column values for `run_logs` (datetime left to the JSON/SQL layer)."""
        return {f.name: getattr(self, f.name) for f in dataclasses.fields(self)}


def insert_records(engine: Engine, records: Sequence[RunRecord]) -> int:
    """Insert `records` into `run_logs` in one transaction (a multi-row INSERT), skipping
    any whose `run_id` is stored already: delivery is at least once (a Redis push that
    timed out after Redis applied it and then went to the database, a batch re-ingested
    after its consumer died between insert and ack, a spool replayed twice), storage is
    exactly once. Returns `len(records)`.

    Raises SQLAlchemy's errors when the database refuses; nothing is written then.
    """
    if not records:
        return 0
    with engine.begin() as conn:
        conn.execute(
            _insert_ignoring_known_runs(engine.dialect.name), [r.to_row() for r in records]
        )
    return len(records)


def _insert_ignoring_known_runs(dialect: str) -> Any:
    if dialect == "postgresql":
        from sqlalchemy.dialects.postgresql import insert as pg_insert

        return pg_insert(RunLog).on_conflict_do_nothing(index_elements=[RunLog.run_id])
    if dialect == "sqlite":
        from sqlalchemy.dialects.sqlite import insert as sqlite_insert

        return sqlite_insert(RunLog).on_conflict_do_nothing(index_elements=[RunLog.run_id])
    return sa.insert(RunLog)  # the unique constraint still refuses a second copy


# --------------------------------------------------------------------------------------
# Spool
# --------------------------------------------------------------------------------------


class Spool:
    """An append-only JSON-lines file of records no destination accepted yet.

    Appends are whole lines written with one `write` on an O_APPEND descriptor under a
    lock, so concurrent writers of one process never interleave. `replay` renames the
    file before reading it, so records appended meanwhile go to a fresh file.
    """

    def __init__(self, path: Path) -> None:
        self.path = path
        self._lock = threading.Lock()

    def append(self, records: Iterable[RunRecord]) -> int:
        """Append `records`; returns how many. Raises `OSError` if the disk refuses."""
        data = b"".join(r.to_json() + b"\n" for r in records)
        if not data:
            return 0
        with self._lock:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
            try:
                os.write(fd, data)
                os.fsync(fd)
            finally:
                os.close(fd)
        return data.count(b"\n")

    def pending(self) -> bool:
        """Whether the spool holds records (or a replay was interrupted)."""
        return self.path.exists() or self._replaying_path().exists()

    def _replaying_path(self) -> Path:
        return self.path.with_suffix(self.path.suffix + ".replaying")

    def replay(self, engine: Engine) -> int:
        """Insert every spooled record into the database, then delete the spool.

        Returns the number inserted. If the database refuses, the records stay spooled
        (the error propagates). Unreadable lines (a torn write after a crash) are
        skipped and logged.
        """
        with self._lock:
            replaying = self._replaying_path()
            if not replaying.exists():
                if not self.path.exists():
                    return 0
                self.path.rename(replaying)
        records: list[RunRecord] = []
        with replaying.open("rb") as f:
            for n, raw in enumerate(f, start=1):
                try:
                    records.append(RunRecord.from_json(raw))
                except (orjson.JSONDecodeError, KeyError, TypeError, ValueError):
                    logger.error("run-log spool %s: skipping unreadable line %d", replaying, n)
        total = 0
        for start in range(0, len(records), BATCH_SIZE):
            total += insert_records(engine, records[start : start + BATCH_SIZE])
        # A crash between the inserts and this unlink replays the file again: the
        # spool is at-least-once, like the Redis path.
        replaying.unlink()
        return total


# --------------------------------------------------------------------------------------
# Redis queue
# --------------------------------------------------------------------------------------


class CircuitBreaker:
    """Stops calling a failing dependency for `reset_after_s` after a failure.

    Closed: calls go through. Open: `allow()` is false until `reset_after_s` passed, then
    one call is let through (half-open); its success closes the breaker.
    """

    def __init__(self, reset_after_s: float = BREAKER_RESET_S) -> None:
        self.reset_after_s = reset_after_s
        self._opened_at: float | None = None
        self._lock = threading.Lock()

    @property
    def is_open(self) -> bool:
        return self._opened_at is not None

    def allow(self) -> bool:
        """Whether a call may be tried now."""
        with self._lock:
            if self._opened_at is None:
                return True
            if time.monotonic() - self._opened_at >= self.reset_after_s:
                self._opened_at = time.monotonic()  # one probe per period
                return True
            return False

    def success(self) -> None:
        with self._lock:
            self._opened_at = None

    def failure(self) -> None:
        with self._lock:
            self._opened_at = time.monotonic()


_CLAIM = """
local items = redis.call('LRANGE', KEYS[1], 0, tonumber(ARGV[1]) - 1)
if #items > 0 then
  redis.call('LTRIM', KEYS[1], #items, -1)
  redis.call('RPUSH', KEYS[2], unpack(items))
end
return items
"""

_ADOPT = """
local items = redis.call('LRANGE', KEYS[1], 0, -1)
if #items > 0 then
  redis.call('RPUSH', KEYS[2], unpack(items))
end
redis.call('DEL', KEYS[1])
return #items
"""


class RunLogQueue:
    """The Redis list run records travel through, and its consumers' processing lists."""

    def __init__(self, client: redis.Redis, *, heartbeat_ttl_s: int = HEARTBEAT_TTL_S) -> None:
        self.client = client
        self.heartbeat_ttl_s = heartbeat_ttl_s
        self._claim = client.register_script(_CLAIM)
        self._adopt = client.register_script(_ADOPT)

    @classmethod
    def from_url(
        cls,
        url: str,
        *,
        timeout_s: float = REDIS_SOCKET_TIMEOUT_S,
        heartbeat_ttl_s: int = HEARTBEAT_TTL_S,
    ) -> RunLogQueue:
        """A queue on `url` whose calls give up after `timeout_s` (connect and read)."""
        client = redis.Redis.from_url(
            url,
            socket_timeout=timeout_s,
            socket_connect_timeout=timeout_s,
            retry_on_timeout=False,
            health_check_interval=0,
        )
        return cls(client, heartbeat_ttl_s=heartbeat_ttl_s)

    def push(self, records: Sequence[RunRecord]) -> None:
        """Append `records` (one RPUSH). Raises `redis.RedisError` when Redis fails."""
        if records:
            self.client.rpush(QUEUE_KEY, *(r.to_json() for r in records))

    def length(self) -> int:
        return int(self.client.llen(QUEUE_KEY))

    def claim(self, consumer: str, count: int = BATCH_SIZE) -> list[RunRecord]:
        """Move up to `count` records atomically to `consumer`'s processing list and
        return them, after first returning whatever that list still holds (a batch whose
        insert did not finish). Call `ack(consumer)` once they are stored."""
        key = PROCESSING_PREFIX + consumer
        self.client.set(HEARTBEAT_PREFIX + consumer, b"1", ex=self.heartbeat_ttl_s)
        leftover = self.client.lrange(key, 0, -1)
        raw = leftover or self._claim(keys=[QUEUE_KEY, key], args=[count])
        return [RunRecord.from_json(item) for item in raw]

    def ack(self, consumer: str) -> None:
        """Drop `consumer`'s processing list: its batch is stored."""
        self.client.delete(PROCESSING_PREFIX + consumer)

    def release(self, consumer: str) -> int:
        """A consumer that stops: its unfinished batch goes back to the queue and its
        heartbeat is dropped, so nothing waits for the heartbeat to expire. Returns the
        number of records handed back."""
        returned = int(self._adopt(keys=[PROCESSING_PREFIX + consumer, QUEUE_KEY]))
        self.client.delete(HEARTBEAT_PREFIX + consumer)
        return returned

    def adopt_orphans(self, consumer: str) -> int:
        """Move the processing lists of dead consumers (no heartbeat) back to the queue.
        Returns the number of records recovered."""
        recovered = 0
        for key in self.client.scan_iter(match=PROCESSING_PREFIX + "*"):
            name = key.decode()[len(PROCESSING_PREFIX) :]
            if name != consumer and not self.client.exists(HEARTBEAT_PREFIX + name):
                recovered += int(self._adopt(keys=[key, QUEUE_KEY]))
        return recovered


def ingest_once(run_queue: RunLogQueue, engine: Engine, consumer: str) -> int:
    """Move one batch from Redis into the database. Returns the number stored (0 when
    the queue is empty). Raises when Redis or the database fails; the batch then stays
    in the consumer's processing list and is retried by the next call."""
    records = run_queue.claim(consumer)
    if not records:
        return 0
    insert_records(engine, records)
    run_queue.ack(consumer)
    return len(records)


def run_ingest_loop(
    run_queue: RunLogQueue,
    engine: Engine,
    stop: threading.Event,
    *,
    consumer: str | None = None,
    idle_sleep_s: float = 0.05,
) -> int:
    """Ingest until `stop` is set, then drain what is left. Returns records stored.

    Redis or database failures are logged and retried after a pause; nothing is lost
    (the batch stays in this consumer's processing list).
    """
    name = consumer or f"{socket.gethostname()}:{os.getpid()}"
    total = 0
    with contextlib.suppress(redis.RedisError):
        run_queue.adopt_orphans(name)
    while True:
        try:
            stored = ingest_once(run_queue, engine, name)
        except (redis.RedisError, sa.exc.SQLAlchemyError) as exc:
            logger.warning("run-log ingestion paused: %s", exc)
            stored = 0
            if stop.wait(1.0):
                break
            continue
        total += stored
        if stored == 0:
            if stop.is_set():
                break
            stop.wait(idle_sleep_s)
    # When Redis is down here too, the batch stays in this consumer's list and another
    # consumer adopts it once the heartbeat has expired.
    with contextlib.suppress(redis.RedisError):
        run_queue.release(name)
    return total


# --------------------------------------------------------------------------------------
# Writer (the hot-path side)
# --------------------------------------------------------------------------------------


@dataclass(slots=True)
class WriterStats:
    """Where the writer's records went (for tests, metrics and the benchmark)."""

    submitted: int = 0
    to_redis: int = 0
    to_database: int = 0
    to_spool: int = 0
    replayed: int = 0


class RunLogWriter:
    """Takes run records on the hot path and delivers them from a background thread.

    `submit` never blocks on I/O. Delivery order per batch: Redis (if `run_queue` is
    given and its breaker is closed) → database → spool file. `flush()` waits until
    everything submitted so far is delivered; `close()` flushes and stops the thread.
    """

    def __init__(
        self,
        engine: Engine,
        spool: Spool,
        run_queue: RunLogQueue | None = None,
        *,
        breaker: CircuitBreaker | None = None,
        batch_size: int = BATCH_SIZE,
        flush_interval_s: float = FLUSH_INTERVAL_S,
        linger_s: float = LINGER_S,
    ) -> None:
        self.engine = engine
        self.spool = spool
        self.run_queue = run_queue
        self.breaker = breaker or CircuitBreaker()
        self.batch_size = batch_size
        self.flush_interval_s = flush_interval_s
        self.linger_s = linger_s
        self.stats = WriterStats()
        self._queue: queue.Queue[RunRecord] = queue.Queue(MEMORY_QUEUE_MAX)
        self._pending = 0
        self._pending_lock = threading.Condition()
        self._stop = threading.Event()
        self._hurry = threading.Event()
        """Set by `flush`: deliver what is queued without lingering."""
        self._next_spool_check = 0.0
        self._database_down = False
        self._thread = threading.Thread(target=self._loop, name="cartwheel-runlog", daemon=True)
        self._thread.start()

    @classmethod
    def from_settings(cls, settings: Settings, engine: Engine) -> RunLogWriter:
        """A writer for `settings`: through Redis when `redis_url` is set."""
        run_queue = RunLogQueue.from_url(settings.redis_url) if settings.redis_url else None
        return cls(engine, Spool(settings.data_dir / SPOOL_FILENAME), run_queue)

    def submit(self, record: RunRecord) -> None:
        """Hand over one record. Never blocks on I/O; when the in-memory queue is full
        (the destinations are far behind) the record is spooled synchronously."""
        with self._pending_lock:
            self._pending += 1
            self.stats.submitted += 1
        try:
            self._queue.put_nowait(record)
        except queue.Full:
            self._deliver_to_spool([record])
            self._done(1)

    def flush(self, timeout_s: float = 30.0) -> bool:
        """Wait until every record submitted so far is delivered. Returns False on
        timeout."""
        deadline = time.monotonic() + timeout_s
        self._hurry.set()
        with self._pending_lock:
            while self._pending:
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    return False
                self._pending_lock.wait(remaining)
        return True

    def close(self, timeout_s: float = 30.0) -> None:
        """Deliver everything and stop the background thread."""
        self.flush(timeout_s)
        self._stop.set()
        self._thread.join(timeout_s)
        if self.run_queue is not None:
            self.run_queue.client.close()

    def _done(self, n: int) -> None:
        with self._pending_lock:
            self._pending -= n
            if self._pending <= 0:
                self._pending_lock.notify_all()

    def _batches(self) -> Iterator[list[RunRecord]]:
        while not (self._stop.is_set() and self._queue.empty()):
            try:
                first = self._queue.get(timeout=self.flush_interval_s)
            except queue.Empty:
                yield []
                continue
            # Linger (unless a flush is waiting): the runs of the checkouts in flight
            # join this batch, and the submitting threads are not interrupted per run.
            if self._hurry.wait(self.linger_s):
                self._hurry.clear()
            batch = [first]
            while len(batch) < self.batch_size:
                try:
                    batch.append(self._queue.get_nowait())
                except queue.Empty:
                    break
            yield batch

    def _loop(self) -> None:
        for batch in self._batches():
            try:
                if batch:
                    self._deliver(batch)
                # Replay only while the database takes writes (the last one worked).
                if not self._database_down and self._spool_check_due():
                    self.stats.replayed += self.spool.replay(self.engine)
            except Exception:  # the thread must survive anything; records are spooled
                logger.exception("run-log writer failed a delivery round")
            finally:
                if batch:
                    self._done(len(batch))

    def _spool_check_due(self) -> bool:
        """Whether a spool waits for replay: checked on disk once per
        `SPOOL_CHECK_INTERVAL_S` (another process sharing the data directory, or this
        one before a restart, may have left one), at once after this writer spooled."""
        now = time.monotonic()
        if now < self._next_spool_check:
            return False
        self._next_spool_check = now + SPOOL_CHECK_INTERVAL_S
        return self.spool.pending()

    def _deliver(self, batch: list[RunRecord]) -> None:
        if self.run_queue is not None and self.breaker.allow():
            try:
                self.run_queue.push(batch)
            except redis.RedisError as exc:
                self.breaker.failure()
                logger.warning("run logs: Redis push failed (%s); writing to the database", exc)
            else:
                self.breaker.success()
                self.stats.to_redis += len(batch)
                return
        try:
            insert_records(self.engine, batch)
        except sa.exc.SQLAlchemyError as exc:
            self._database_down = True
            logger.error("run logs: database write failed (%s); spooling %d", exc, len(batch))
            self._deliver_to_spool(batch)
        else:
            self._database_down = False
            self.stats.to_database += len(batch)

    def _deliver_to_spool(self, batch: list[RunRecord]) -> None:
        self.stats.to_spool += self.spool.append(batch)
        self._next_spool_check = 0.0


# --------------------------------------------------------------------------------------
# Retention
# --------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class PruneResult:
    by_age: int
    by_count: int


def prune(
    engine: Engine,
    *,
    max_age_days: int,
    max_per_function: int,
    now: datetime | None = None,
) -> PruneResult:
    """Delete run logs older than `max_age_days`, then all but the newest
    `max_per_function` of each (shop, function). Works on PostgreSQL and SQLite."""
    cutoff = (now or datetime.now(UTC)) - timedelta(days=max_age_days)
    ranked = sa.select(
        RunLog.id,
        sa.func.row_number()
        .over(
            partition_by=(RunLog.shop_id, RunLog.function_id),
            order_by=(RunLog.created_at.desc(), RunLog.id.desc()),
        )
        .label("rank"),
    ).subquery()
    with engine.begin() as conn:
        by_age = conn.execute(sa.delete(RunLog).where(RunLog.created_at < cutoff)).rowcount
        surplus = sa.select(ranked.c.id).where(ranked.c.rank > max_per_function)
        by_count = conn.execute(sa.delete(RunLog).where(RunLog.id.in_(surplus))).rowcount
    return PruneResult(by_age=by_age, by_count=by_count)


def prune_job() -> dict[str, int]:
    """RQ job: apply the retention settings of the worker's environment."""
    from cartwheel.db import make_engine

    settings = Settings.from_env()
    engine = make_engine(settings)
    try:
        result = prune(
            engine,
            max_age_days=settings.run_log_retention_days,
            max_per_function=settings.run_log_retention_per_function,
        )
    finally:
        engine.dispose()
    return {"by_age": result.by_age, "by_count": result.by_count}


# --------------------------------------------------------------------------------------
# CLI
# --------------------------------------------------------------------------------------


@click.group(name="runlog")
def runlog_cli() -> None:
    """Run-log operations: ingestion from Redis and retention."""


@runlog_cli.command(name="ingest")
@click.option("--once", is_flag=True, help="Ingest what is queued now, then exit.")
def ingest_command(once: bool) -> None:
    """Move run logs from Redis into the database (runs until interrupted).

    Needs DATABASE_URL and REDIS_URL, like the API server.
    """
    from cartwheel.db import make_engine

    settings = Settings.from_env()
    if not settings.redis_url:
        raise click.UsageError(
            "REDIS_URL is not set: without Redis, run logs are written directly."
        )
    engine = make_engine(settings)
    run_queue = RunLogQueue.from_url(settings.redis_url, timeout_s=5.0)
    stop = threading.Event()
    if once:
        stop.set()
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: stop.set())
    try:
        stored = run_ingest_loop(run_queue, engine, stop)
    finally:
        engine.dispose()
    click.echo(orjson.dumps({"stored": stored}).decode())


@runlog_cli.command(name="prune")
def prune_command() -> None:
    """Apply retention: CARTWHEEL_RUN_LOG_RETENTION_DAYS and _PER_FUNCTION."""
    click.echo(orjson.dumps(prune_job()).decode())
